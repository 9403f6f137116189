package auth

import (
	"strings"
	"testing"
)

func TestConfiguredAndStoredKeysAreAcceptedOthersAreNot(t *testing.T) {
	k := NewKeys([]string{"from-env"})
	k.Set([][]byte{Hash("from-db")})
	for key, want := range map[string]bool{"from-env": true, "from-db": true, "from-dbx": false, "": false} {
		if got := k.Valid(key); got != want {
			t.Errorf("Valid(%q) = %v, want %v", key, got, want)
		}
	}
}

func TestReplacingStoredKeysKeepsConfiguredOnes(t *testing.T) {
	k := NewKeys([]string{"env"})
	k.Set([][]byte{Hash("old")})
	k.Set([][]byte{Hash("new")})
	if k.Valid("old") || !k.Valid("new") || !k.Valid("env") {
		t.Fatal("a revoked key is still valid, or a current one is not")
	}
}

func TestBearerReadsOnlyBearerTokens(t *testing.T) {
	cases := map[string]string{"Bearer abc": "abc", "bearer  abc ": "abc", "Basic abc": "", "abc": "", "": ""}
	for header, want := range cases {
		if got := Bearer(header); got != want {
			t.Errorf("Bearer(%q) = %q, want %q", header, got, want)
		}
	}
}

func TestNewKeysAreRandomAndPrefixed(t *testing.T) {
	a, _ := NewKey()
	b, _ := NewKey()
	if a == b || !strings.HasPrefix(a, KeyPrefix) || len(a) < 40 {
		t.Fatalf("keys %q and %q", a, b)
	}
}
