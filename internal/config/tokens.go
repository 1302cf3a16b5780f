package config

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"strings"
)

// tokenPrefix starts a token hash in server.admin_tokens.
const tokenPrefix = "sha256:"

// HashToken returns the form a bearer token is configured in: its SHA-256, so that the
// configuration (and anyone who reads it) never holds the token itself.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return tokenPrefix + hex.EncodeToString(sum[:])
}

// IsTokenHash reports whether s has the form HashToken returns.
func IsTokenHash(s string) bool {
	h, ok := strings.CutPrefix(s, tokenPrefix)
	if !ok || len(h) != 64 {
		return false
	}
	_, err := hex.DecodeString(h)
	return err == nil
}

// TokenAllowed reports whether token hashes to one of hashes. Every hash is compared, in
// constant time, so the answer's timing says nothing about which one (or how much of one)
// matched.
func TokenAllowed(hashes []string, token string) bool {
	if token == "" {
		return false
	}
	got := []byte(HashToken(token))
	ok := 0
	for _, h := range hashes {
		if len(h) == len(got) {
			ok |= subtle.ConstantTimeCompare([]byte(strings.ToLower(h)), got)
		}
	}
	return ok == 1
}
