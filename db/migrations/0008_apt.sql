-- APT repositories (issue 17) next to yum/dnf ones. An APT repository is one suite of an
-- archive: directory is the archive root (dists/ and the pool beside it), suite the
-- directory under dists/, arch always 'all' (a suite serves every architecture it lists).
-- Its published state is its InRelease, recorded in repomd_versions like a repomd.xml
-- (sha256 of the file's bytes; timestamp its Date), with the Valid-Until after which apt
-- refuses it.
ALTER TABLE repositories
    ADD COLUMN kind text NOT NULL DEFAULT 'yum' CHECK (kind IN ('yum', 'apt')),
    ADD COLUMN suite text NOT NULL DEFAULT '' CHECK (suite = '' OR suite ~ '^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$'),
    -- the file whose checksum is the revision: InRelease, or Release for a suite published
    -- without one (unsigned, or signed only by Release.gpg)
    ADD COLUMN release_file text NOT NULL DEFAULT '' CHECK (release_file IN ('', 'InRelease', 'Release')),
    -- the OpenPGP keyring that must verify every revision ('' for none): a path on the
    -- machine that pushes
    ADD COLUMN keyring text NOT NULL DEFAULT '',
    ADD CONSTRAINT repositories_kind_fields CHECK (
        (kind = 'yum' AND suite = '' AND keyring = '' AND release_file = '') OR (kind = 'apt' AND suite <> '' AND arch = 'all' AND release_file <> ''));

ALTER TABLE repomd_versions
    ADD COLUMN valid_until timestamptz,
    -- an APT revision whose clients read its index files by hash (Acquire-By-Hash with
    -- SHA256 its strongest list): rewriting the plain index names in place leaves them
    -- alone only when the revision a region serves is one
    ADD COLUMN by_hash boolean NOT NULL DEFAULT false;
