package db

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/regionmirror/regionmirror/internal/model"
)

// RecordRepomdVersion makes v the repository's current version. A version seen before
// (the origin went back to it) becomes current again. It sets v.ID and v.FirstSeen and
// reports whether anything changed.
func (d *DB) RecordRepomdVersion(ctx context.Context, v *model.RepomdVersion) (bool, error) {
	changed := false
	err := d.Transact(ctx, func(tx pgx.Tx) error {
		var currentSHA []byte
		err := tx.QueryRow(ctx, `SELECT sha256 FROM repomd_versions WHERE repository_id = $1
			ORDER BY first_seen DESC, id DESC LIMIT 1`, v.RepositoryID).Scan(&currentSHA)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if err == nil && string(currentSHA) == string(v.SHA256) {
			changed = false
			return tx.QueryRow(ctx, `SELECT id, first_seen FROM repomd_versions WHERE repository_id = $1 AND sha256 = $2`,
				v.RepositoryID, v.SHA256).Scan(&v.ID, &v.FirstSeen)
		}
		changed = true
		err = tx.QueryRow(ctx, `
			INSERT INTO repomd_versions (repository_id, md5, sha1, sha256, sha512, size, timestamp, valid_until, by_hash)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
			ON CONFLICT (repository_id, sha256) DO UPDATE SET first_seen = greatest(now(), repomd_versions.first_seen + interval '1 microsecond')
			RETURNING id, first_seen`,
			v.RepositoryID, v.MD5, v.SHA1, v.SHA256, v.SHA512, v.Size, v.Timestamp, nullTime(v.ValidUntil), v.ByHash).Scan(&v.ID, &v.FirstSeen)
		if err != nil {
			return err
		}
		if err := bumpRepository(ctx, tx, v.RepositoryID); err != nil {
			return err
		}
		return notify(ctx, tx, "repomd")
	})
	if err != nil {
		return false, fmt.Errorf("record repomd.xml of repository %d: %w", v.RepositoryID, err)
	}
	return changed, nil
}

// repomdColumns select a version with its superseded_at: the first_seen of the next newer
// version of the same repository (NULL for the current one), so that every reader agrees.
const repomdColumns = `id, repository_id, md5, sha1, sha256, sha512, size, timestamp, valid_until, by_hash, first_seen,
	lag(first_seen) OVER (PARTITION BY repository_id ORDER BY first_seen DESC, id DESC)`

func scanRepomdVersion(r pgx.CollectableRow) (model.RepomdVersion, error) {
	var v model.RepomdVersion
	var superseded, validUntil *time.Time
	err := r.Scan(&v.ID, &v.RepositoryID, &v.MD5, &v.SHA1, &v.SHA256, &v.SHA512, &v.Size, &v.Timestamp, &validUntil, &v.ByHash, &v.FirstSeen, &superseded)
	if superseded != nil {
		v.SupersededAt = *superseded
	}
	if validUntil != nil {
		v.ValidUntil = *validUntil
	}
	return v, err
}

// RepomdVersions returns a repository's versions, newest (current) first.
func (d *DB) RepomdVersions(ctx context.Context, repositoryID int64) ([]model.RepomdVersion, error) {
	rows, err := d.pool.Query(ctx, `SELECT `+repomdColumns+`
		FROM repomd_versions WHERE repository_id = $1 ORDER BY first_seen DESC, id DESC`, repositoryID)
	if err != nil {
		return nil, fmt.Errorf("repomd versions: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanRepomdVersion)
	if err != nil {
		return nil, fmt.Errorf("repomd versions: %w", err)
	}
	return out, nil
}

// nullTime is t, or NULL for the zero time.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
