// Package repomd reads yum/dnf repository metadata: the hashes of repomd.xml that metalinks
// carry, the newest timestamp of its data entries, and the files it names.
package repomd
