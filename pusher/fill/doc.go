// Package fill works the fill queue of on-demand regions: a Worker claims (region, file)
// jobs from the database, copies the file into the region (server-side from the nearest
// region of the same S3 service that holds it verified, else from the origin), verifies
// the copy, and only then records it, under the job's fencing token.
package fill
