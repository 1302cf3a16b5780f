// Package repocheck reads a region's repomd.xml back as clients do and says which of the
// repository's versions it is. The pusher uses it to verify what it wrote, the scanner to
// verify what regions serve.
package repocheck
