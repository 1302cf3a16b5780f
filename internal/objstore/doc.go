// Package objstore is the one seam between regionmirror and the places that hold a
// region's copy: an S3 bucket (any S3-compatible endpoint) or a local directory. Keys are
// origin paths ("demo/1/os/repodata/repomd.xml"); a store adds its region's prefix.
package objstore
