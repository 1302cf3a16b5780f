package model

import (
	"bytes"
	"fmt"
	"time"
)

// What a region serves of a repository, as every view of it says it: the CLI's status, the
// pages, the API, and selection (which offers a region for a repository only when it is
// fresh or alternate).
const (
	RepoFresh       = "fresh"       // serves the current repomd.xml, verified
	RepoAlternate   = "alternate"   // serves an older one that metalinks still list as an alternate
	RepoStale       = "stale"       // serves one clients refuse: too old, never published, or not verified
	RepoMissing     = "missing"     // the last check found no repomd.xml there
	RepoUnreachable = "unreachable" // the last check could not read it
	RepoUnverified  = "unverified"  // nothing checked yet, or the origin's repomd.xml is not recorded yet
	RepoExcluded    = "excluded"    // the region's include prefixes do not carry the repository
)

// RecordedRepo is what the last push or scan recorded for a repository in a region
// (region_repos): the state it judged and the repomd.xml's sha256 it read there.
type RecordedRepo struct {
	Known        bool   // a row exists
	State        string // fresh, alternate, stale, missing, unreachable (Repo*)
	RepomdSHA256 []byte
}

// AlternatesPolicy is how long (metalink.alternates_max_age) a superseded repomd.xml stays
// in the metalinks' alternates. The server applies no count limit.
type AlternatesPolicy struct {
	MaxAge time.Duration
}

// Offered reports whether metalinks still list v (not the current version) as an
// alternate at now.
func (p AlternatesPolicy) Offered(v RepomdVersion, now time.Time) bool {
	return !v.SupersededAt.IsZero() && now.Sub(v.SupersededAt) <= p.MaxAge
}

// RepoFreshness is the verdict on one repository in one region.
type RepoFreshness struct {
	State string
	// Version is the index (in the versions given, newest first) of the repomd.xml the
	// region serves; -1 when it serves none of them.
	Version int
	// Reason says, when the region is not offered, why (for explain and the exclusion
	// reasons); "" when State is RepoFresh or Alternate.
	Reason string
}

// Offered reports whether clients may be sent to the region for the repository.
func (f RepoFreshness) Offered() bool { return f.State == RepoFresh || f.State == RepoAlternate }

// Freshness is the one rule for fresh, alternate and stale. carried is
// CarriesRepository(region's includes, repository's directory); rec is what was recorded;
// versions are the repository's repomd.xml versions, newest (current) first. A region
// recorded fresh or alternate is fresh while it serves the current version, alternate
// while the version it serves is still offered as an alternate, stale once it is not (or
// when it serves a version the origin never published). Recorded stale, missing and
// unreachable stay what they are: they are verdicts on the region's copy, not on the clock.
func Freshness(carried bool, rec RecordedRepo, versions []RepomdVersion, policy AlternatesPolicy, now time.Time) RepoFreshness {
	f := RepoFreshness{Version: -1}
	if !carried {
		f.State, f.Reason = RepoExcluded, "does not carry the repository"
		return f
	}
	if !rec.Known {
		f.State, f.Reason = RepoUnverified, "repository not verified in this region yet"
		return f
	}
	for i, v := range versions {
		if rec.RepomdSHA256 != nil && bytes.Equal(v.SHA256, rec.RepomdSHA256) {
			f.Version = i
			break
		}
	}
	switch rec.State {
	case RepoFresh, RepoAlternate:
	case RepoMissing:
		f.State, f.Reason = RepoMissing, "has no repomd.xml"
		return f
	case RepoUnreachable:
		f.State, f.Reason = RepoUnreachable, "unreachable"
		return f
	default: // stale, or a state this binary does not know
		f.State, f.Reason = RepoStale, "serves a stale repomd.xml"
		return f
	}
	switch {
	case len(versions) == 0:
		f.State, f.Reason = RepoUnverified, "the origin's repomd.xml has not been recorded yet"
	case f.Version < 0:
		f.State, f.Reason = RepoStale, fmt.Sprintf("serves a repomd.xml the origin never published (sha256 %x)", rec.RepomdSHA256)
	case f.Version == 0:
		f.State = RepoFresh
	case policy.Offered(versions[f.Version], now):
		f.State = RepoAlternate
	default:
		age := now.Sub(versions[f.Version].SupersededAt)
		f.State, f.Reason = RepoStale, fmt.Sprintf("serves a repomd.xml superseded %s ago, beyond metalink.alternates_max_age (%s)",
			roundAge(age), policy.MaxAge)
	}
	return f
}

func roundAge(d time.Duration) time.Duration {
	if d > time.Minute {
		return d.Round(time.Minute)
	}
	return d.Round(time.Second)
}
