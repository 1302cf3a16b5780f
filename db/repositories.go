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
	return d.Transact(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `
			INSERT INTO repositories (name, arch, directory) VALUES ($1, $2, $3)
			RETURNING id, created_at`, r.Name, r.Arch, r.Directory).Scan(&r.ID, &r.CreatedAt)
		if isUniqueViolation(err) {
			return fmt.Errorf("repository %s/%s: %w", r.Name, r.Arch, ErrExists)
		}
		if err != nil {
			return fmt.Errorf("create repository %s/%s: %w", r.Name, r.Arch, err)
		}
		return notify(ctx, tx, "repositories")
	})
}

// GetRepository returns the repository with that name and arch.
func (d *DB) GetRepository(ctx context.Context, name, arch string) (*model.Repository, error) {
	var r model.Repository
	err := d.pool.QueryRow(ctx, `
		SELECT id, name, arch, directory, created_at FROM repositories WHERE name = $1 AND arch = $2`,
		name, arch).Scan(&r.ID, &r.Name, &r.Arch, &r.Directory, &r.CreatedAt)
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
	rows, err := d.pool.Query(ctx, "SELECT id, name, arch, directory, created_at FROM repositories ORDER BY name, arch")
	if err != nil {
		return nil, fmt.Errorf("list repositories: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (model.Repository, error) {
		var r model.Repository
		err := row.Scan(&r.ID, &r.Name, &r.Arch, &r.Directory, &r.CreatedAt)
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
		tag, err := tx.Exec(ctx, "DELETE FROM repositories WHERE name = $1 AND arch = $2", name, arch)
		if err != nil {
			return fmt.Errorf("delete repository %s/%s: %w", name, arch, err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("repository %s/%s: %w", name, arch, ErrNotFound)
		}
		return notify(ctx, tx, "repositories")
	})
}
