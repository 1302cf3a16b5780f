package filetable

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/bits"
	"slices"
)

// ErrRewritten means a change names a file as another path than the table has, or a file
// the table holds as removed: writers never rename a file or revive a removed one, so
// something rewrote the rows behind change tracking (an ID sequence reset, a manual edit).
// The table cannot be patched; read it whole.
var ErrRewritten = errors.New("a file was renamed or revived behind change tracking")

// derive returns a table sharing every part of t. Update copies a part before its first
// change in place.
func (t *Table) derive() *Table {
	n := *t
	n.Verified = maps.Clone(t.Verified)
	return &n
}

// Update applies changes to a table derived from base, copying each shared part once,
// before its first change in place: base is not modified and stays valid for its readers
// while the update runs and after. Updates are applied one at a time along a chain of
// tables (the new table is the next base).
type Update struct {
	base *Table
	t    *Table
	// Parts of t already copied from base.
	pages, dirs, ids, deleted, gone bool
	// copied holds the pages below base's count already copied from it (those above
	// are this update's own).
	copied  Bitset
	regions map[int64]bool
}

// NewUpdate starts an update of base.
func NewUpdate(base *Table) *Update { return &Update{base: base, t: base.derive()} }

// Table returns the updated table. It shares base's ReadPoint until the caller sets its own.
func (u *Update) Table() *Table { return u.t }

// grow returns set with room for n members, copied unless owned.
func grow(set Bitset, n int, owned bool) Bitset {
	words := (n + 63) / 64
	if owned && len(set) >= words {
		return set
	}
	if owned && cap(set) >= words {
		// Room this update made: beyond len it was never written, so it is zero. Copying
		// instead would copy a region's whole set once per 64 new files.
		return set[:words]
	}
	// Grown with room: a push adds files in many small transactions.
	out := make(Bitset, max(words, len(set)), max(words, len(set))+words/4+1)
	copy(out, set)
	return out
}

// File applies a files row added or changed since base's read: a new ID is appended, a
// known one gets the row's size, sha256 and deletion. path and sum are copied. A known ID
// with another path, or a removed one, is ErrRewritten.
func (u *Update) File(id int64, path []byte, size int64, sum []byte, deleted bool) error {
	t := u.t
	i, known := t.ids.lookup(id)
	if !known {
		if !u.dirs {
			t.dirIdx, u.dirs = maps.Clone(t.dirIdx), true
		}
		var err error
		if i, err = t.appendFile(id, path, size, sum); err != nil {
			return err
		}
		if !u.ids {
			t.ids, u.ids = t.ids.clone(), true
		}
		t.ids.add(id, i)
	} else {
		if len(sum) != 32 {
			return fmt.Errorf("file %d: sha256 of %d bytes", id, len(sum))
		}
		if !t.hasPath(i, path) || t.Gone.Has(i) {
			return fmt.Errorf("file %d: %w", id, ErrRewritten)
		}
		p := u.ownPage(i >> pageBits)
		p.size[i&(1<<pageBits-1)] = size
		copy(p.sum[i&(1<<pageBits-1)][:], sum)
	}
	if deleted != t.Deleted.Has(i) {
		t.Deleted, u.deleted = grow(t.Deleted, t.Len(), u.deleted), true
		if deleted {
			t.Deleted.Set(i)
		} else {
			t.Deleted.Clear(i)
		}
	}
	return nil
}

// ownPage returns page p of the updated table, copied from base first if shared.
func (u *Update) ownPage(p int) *filePage {
	t := u.t
	if p >= len(u.base.pages) || u.copied.Has(p) {
		return t.pages[p]
	}
	if !u.pages {
		// The page pointers: 8 bytes per 64 files.
		t.pages, u.pages = slices.Clone(t.pages), true
		u.copied = NewBitset(len(u.base.pages))
	}
	c := *t.pages[p]
	t.pages[p] = &c
	u.copied.Set(p)
	return &c
}

// RemoveFile marks the file with that ID as gone (its row was deleted); an unknown ID is
// ignored.
func (u *Update) RemoveFile(id int64) {
	if i, ok := u.t.ids.lookup(id); ok {
		u.removeIndex(i)
	}
}

func (u *Update) removeIndex(i int) {
	u.t.Gone, u.gone = grow(u.t.Gone, u.t.Len(), u.gone), true
	u.t.Gone.Set(i)
}

// SetCopy records whether the region's copy of the file is verified; an unknown file is
// ignored.
func (u *Update) SetCopy(region, file int64, verified bool) {
	t := u.t
	i, ok := t.ids.lookup(file)
	if !ok || t.Verified[region].Has(i) == verified {
		return
	}
	if u.regions == nil {
		u.regions = map[int64]bool{}
	}
	set := grow(t.Verified[region], t.Len(), u.regions[region])
	t.Verified[region], u.regions[region] = set, true
	if verified {
		set.Set(i)
	} else {
		set.Clear(i)
	}
}

// Reconciler compares a table with a full read of the rows instead of building a second
// table: the result shares base's arenas unless something differs, and only the region
// sets are new. A full read next to the serving table would need the memory of both. Feed
// it every files row through File, then call RemoveMissing, then SetVerified with the
// region sets read over Table.
type Reconciler struct {
	u       *Update
	base    *Table
	present Bitset // files of base that File named
}

// NewReconciler starts a reconciliation of base; base is not modified.
func NewReconciler(base *Table) *Reconciler {
	return &Reconciler{u: NewUpdate(base), base: base, present: NewBitset(base.Len())}
}

// File compares a files row with the table, corrects the table where they differ, and
// reports whether they did. A known ID with another path, or a removed one, is
// ErrRewritten.
func (r *Reconciler) File(id int64, path []byte, size int64, sum []byte, deleted bool) (bool, error) {
	t := r.u.t
	i, known := t.ids.lookup(id)
	changed := false
	switch {
	case known && (t.Gone.Has(i) || !t.hasPath(i, path)):
		return false, fmt.Errorf("file %d: %w", id, ErrRewritten)
	case known && t.Size(i) == size && bytes.Equal(t.SHA256(i), sum) && t.Deleted.Has(i) == deleted:
	default:
		if err := r.u.File(id, path, size, sum, deleted); err != nil {
			return false, err
		}
		i, _ = t.ids.lookup(id)
		changed = true
	}
	if i < len(r.present)*64 {
		r.present.Set(i)
	}
	return changed, nil
}

// RemoveMissing marks as gone the files of base that no File call named, and returns how
// many; call it after the last File.
func (r *Reconciler) RemoveMissing() int {
	n := 0
	for i := range r.base.Len() {
		if !r.present.Has(i) && !r.base.Gone.Has(i) {
			r.u.removeIndex(i)
			n++
		}
	}
	return n
}

// Table returns the reconciled table: its files are final after RemoveMissing, its region
// sets after SetVerified. It shares base's ReadPoint until the caller sets its own.
func (r *Reconciler) Table() *Table { return r.u.t }

// SetVerified installs the region sets read whole over Table's files, and returns how many
// copies they count differently from the table's sets.
func (r *Reconciler) SetVerified(sets map[int64]Bitset) int {
	t := r.u.t
	n := 0
	for region, set := range sets {
		old := t.Verified[region]
		for w := range set {
			var o uint64
			if w < len(old) {
				o = old[w]
			}
			n += bits.OnesCount64(set[w] ^ o)
		}
	}
	for region, old := range t.Verified {
		if _, ok := sets[region]; !ok {
			n += old.Count()
		}
	}
	t.Verified = sets
	return n
}
