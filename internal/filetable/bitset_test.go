package filetable

import "testing"

func TestBitset(t *testing.T) {
	for _, n := range []int{0, 1, 63, 64, 65, 200} {
		if got, want := len(NewBitset(n)), (n+63)/64; got != want {
			t.Errorf("NewBitset(%d): %d words, want %d", n, got, want)
		}
	}
	b := NewBitset(130)
	members := []int{0, 1, 63, 64, 127, 128, 129}
	for _, i := range members {
		b.Set(i)
	}
	b.Set(64) // twice: still one member
	if got := b.Count(); got != len(members) {
		t.Errorf("count %d, want %d", got, len(members))
	}
	for i := range 130 {
		want := false
		for _, m := range members {
			want = want || m == i
		}
		if b.Has(i) != want {
			t.Errorf("Has(%d) = %v, want %v", i, !want, want)
		}
	}
	for _, i := range []int{-1, -64, 192, 1 << 20} {
		if b.Has(i) {
			t.Errorf("Has(%d) out of range", i)
		}
	}
	b.Clear(64)
	b.Clear(2) // not a member
	if b.Has(64) || !b.Has(63) || !b.Has(127) || b.Count() != len(members)-1 {
		t.Errorf("after Clear(64): %v, count %d", b, b.Count())
	}
	if NewBitset(0).Has(0) || NewBitset(0).Count() != 0 {
		t.Error("the empty set has members")
	}
}

func TestSplitPath(t *testing.T) {
	for _, c := range []struct{ path, dir, name string }{
		{"a/b/c.rpm", "a/b", "c.rpm"},
		{"README", "", "README"},
		{"dir/", "dir", ""},
		{"/top", "", "top"},
		{"", "", ""},
		{"Packages/libc++-1.rpm", "Packages", "libc++-1.rpm"},
	} {
		if dir, name := SplitPath(c.path); dir != c.dir || name != c.name {
			t.Errorf("SplitPath(%q) = %q, %q; want %q, %q", c.path, dir, name, c.dir, c.name)
		}
	}
}
