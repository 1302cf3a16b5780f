// Package fill works the fill queue of on-demand regions: a Worker claims (region, file)
// jobs from the database, copies the file into the region (server-side from the nearest
// region of the same S3 service that holds it verified, else from the origin), verifies
// the copy, and only then records it, under the job's fencing token and the region's
// version at the claim.
//
// The token fences the record, not the bucket. Two things fence the bucket: the worker
// counts its lease by its own clock from when it sent the claim or the last extension
// that answered (a quarter early) and cancels the copy when it passes, whether or not the
// database answers; and every write of the key is conditional on the key as the worker
// saw it before writing (If-Match its ETag, or If-None-Match: * when absent), so a write
// that lands after another worker's newer copy is refused by S3. What remains: a single
// CopyObject that S3 had already accepted completes even when the worker cancels it, and
// versitygw 1.8 does not check the destination's conditions on CopyObject (AWS does).
package fill
