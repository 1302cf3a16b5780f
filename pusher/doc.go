// Package pusher copies the origin tree into every region: it takes the inventory of the
// origin, plans per region what is missing, uploads in phases (packages, then repodata,
// then repomd.xml), verifies, and removes what the origin deleted after a grace period.
package pusher
