package db

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/regionmirror/regionmirror/internal/model"
)

// CreateRepository inserts a validated repository and sets its ID.
func (d *DB) CreateRepository(ctx context.Context, r *model.Repository) error {
	if r.Kind == "" {
		r.Kind = model.RepoYum // what a repository was before there were kinds
	}
	return d.Transact(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `
			INSERT INTO repositories (name, arch, directory, kind, suite, release_file, keyring) VALUES ($1, $2, $3, $4, $5, $6, $7)
			RETURNING id, created_at`, r.Name, r.Arch, r.Directory, r.Kind, r.Suite, r.ReleaseFile, r.Keyring).Scan(&r.ID, &r.CreatedAt)
		if isUniqueViolation(err) {
			return fmt.Errorf("repository %s/%s: %w", r.Name, r.Arch, ErrExists)
		}
		if err != nil {
			return fmt.Errorf("create repository %s/%s: %w", r.Name, r.Arch, err)
		}
		if _, err := bumpGeneration(ctx, tx, []string{r.Directory}); err != nil {
			return err
		}
		return notify(ctx, tx, "repositories")
	})
}

// repositoryColumns are what scanRepository reads, in its order.
const repositoryColumns = "id, name, arch, directory, kind, suite, release_file, keyring, created_at"

func scanRepository(r *model.Repository) []any {
	return []any{&r.ID, &r.Name, &r.Arch, &r.Directory, &r.Kind, &r.Suite, &r.ReleaseFile, &r.Keyring, &r.CreatedAt}
}

// GetRepository returns the repository with that name and arch.
func (d *DB) GetRepository(ctx context.Context, name, arch string) (*model.Repository, error) {
	var r model.Repository
	err := d.pool.QueryRow(ctx, `
		SELECT `+repositoryColumns+` FROM repositories WHERE name = $1 AND arch = $2`,
		name, arch).Scan(scanRepository(&r)...)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("repository %s/%s: %w", name, arch, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get repository %s/%s: %w", name, arch, err)
	}
	return &r, nil
}

// ListRepositories returns every repository ordered by name and arch.
func (d *DB) ListRepositories(ctx context.Context) ([]model.Repository, error) {
	rows, err := d.pool.Query(ctx, "SELECT "+repositoryColumns+" FROM repositories ORDER BY name, arch")
	if err != nil {
		return nil, fmt.Errorf("list repositories: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (model.Repository, error) {
		var r model.Repository
		err := row.Scan(scanRepository(&r)...)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("list repositories: %w", err)
	}
	if out == nil {
		out = []model.Repository{}
	}
	return out, nil
}

// DeleteRepository removes a repository and its repomd.xml history.
func (d *DB) DeleteRepository(ctx context.Context, name, arch string) error {
	return d.Transact(ctx, func(tx pgx.Tx) error {
		var dir string
		err := tx.QueryRow(ctx, "DELETE FROM repositories WHERE name = $1 AND arch = $2 RETURNING directory", name, arch).Scan(&dir)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("repository %s/%s: %w", name, arch, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("delete repository %s/%s: %w", name, arch, err)
		}
		if _, err := bumpGeneration(ctx, tx, []string{dir}); err != nil {
			return err
		}
		return notify(ctx, tx, "repositories")
	})
}

// bumpRepository records, in tx, a change to the repository's metadata against its
// directory.
func bumpRepository(ctx context.Context, tx pgx.Tx, repositoryID int64) error {
	var dir string
	if err := tx.QueryRow(ctx, "SELECT directory FROM repositories WHERE id = $1", repositoryID).Scan(&dir); err != nil {
		return fmt.Errorf("repository %d: %w", repositoryID, err)
	}
	_, err := bumpGeneration(ctx, tx, []string{dir})
	return err
}
