package model

import (
	"path"
	"strings"
)

// Tree-layout rules every package applies the same way: which paths a region carries,
// which repositories it carries, where a repository's repomd.xml is, the "+" twin key.

// CarriesPath reports whether a region with these include prefixes carries path p (a file
// or a directory): no includes carry everything; otherwise p must be an include or lie
// under one.
func CarriesPath(includes []string, p string) bool {
	if len(includes) == 0 {
		return true
	}
	for _, inc := range includes {
		if p == inc || strings.HasPrefix(p, inc+"/") {
			return true
		}
	}
	return false
}

// CarriesRepository reports whether a region with these include prefixes carries the
// repository in directory dir: all of it, metadata and every file the metadata may name.
// An include that covers repodata/ but not the packages beside it does not carry the
// repository; such a region gets none of its metadata and is never offered for it.
// A repository at the root of the tree (dir "") is carried only by a region without
// includes.
func CarriesRepository(includes []string, dir string) bool {
	if dir == "" || dir == "." {
		return len(includes) == 0
	}
	return CarriesPath(includes, dir)
}

// RepomdPath is the path of a repository's repomd.xml.
func RepomdPath(dir string) string {
	return path.Join(dir, "repodata", "repomd.xml")
}

// SpaceTwin is the second key a path with "+" is written under, with spaces for the "+"
// (older dnf sends "+" unencoded, which S3 reads as a space); "" when p has no "+".
func SpaceTwin(p string) string {
	if !strings.Contains(p, "+") {
		return ""
	}
	return strings.ReplaceAll(p, "+", " ")
}
