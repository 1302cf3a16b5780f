package config

import "testing"

func TestTokenAllowed(t *testing.T) {
	h1, h2 := HashToken("first-token-0123456789"), HashToken("second-token-0123456789")
	if !IsTokenHash(h1) || IsTokenHash("first-token-0123456789") || IsTokenHash("sha256:zz") {
		t.Fatal("IsTokenHash")
	}
	for _, c := range []struct {
		hashes []string
		token  string
		want   bool
	}{
		{[]string{h1, h2}, "first-token-0123456789", true},
		{[]string{h1, h2}, "second-token-0123456789", true},
		{[]string{h1, h2}, "first-token-012345678", false},
		{[]string{h1}, "", false},
		{nil, "first-token-0123456789", false},
		// The hash itself is not a token.
		{[]string{h1}, h1, false},
	} {
		if got := TokenAllowed(c.hashes, c.token); got != c.want {
			t.Errorf("TokenAllowed(%d hashes, %q) = %v, want %v", len(c.hashes), c.token, got, c.want)
		}
	}
}
