// Package model is the vocabulary every package shares: the records operators manage
// (regions, repositories) and the ones the system keeps (files, a region's copies, the
// repomd.xml versions, what a region serves, runs, health) with their states; the
// tree-layout rules (which paths a region carries, keys and URLs, the "+" twin, repomd.xml
// paths, content types and cache headers); the one freshness rule; and validation, here
// rather than in the CLI or the database layer so that every writer applies the same rules.
// It imports nothing of regionmirror's but internal/geo.
package model
