// Package auth checks API keys: "Authorization: Bearer <key>", compared in constant time against the SHA-256
// hashes of the known keys. Keys are 256-bit random strings, so a fast hash is enough (no password stretching);
// only hashes are kept in memory and in Postgres.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"strings"
	"sync/atomic"
)

// KeyPrefix marks yoloforge keys, so a leaked one is recognisable in logs and secret scanners.
const KeyPrefix = "yf_"

// Hash is what is stored for a key.
func Hash(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:]
}

// NewKey makes a random key.
func NewKey() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return KeyPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// Keys is the set of accepted key hashes; it is replaced whole (from config plus Postgres) and read lock-free.
type Keys struct {
	static [][]byte
	all    atomic.Pointer[[][]byte]
}

// NewKeys starts with the keys given in the configuration.
func NewKeys(plain []string) *Keys {
	k := &Keys{}
	for _, p := range plain {
		k.static = append(k.static, Hash(p))
	}
	k.Set(nil)
	return k
}

// Set replaces the stored keys' hashes (the configured ones are always kept).
func (k *Keys) Set(stored [][]byte) {
	all := append(append([][]byte{}, k.static...), stored...)
	k.all.Store(&all)
}

// Len is the number of accepted keys.
func (k *Keys) Len() int { return len(*k.all.Load()) }

// Valid says whether key is one of them. Every stored hash is compared, so the time does not tell which matched.
func (k *Keys) Valid(key string) bool {
	if key == "" {
		return false
	}
	h := Hash(key)
	match := 0
	for _, s := range *k.all.Load() {
		match |= subtle.ConstantTimeCompare(h, s)
	}
	return match == 1
}

// Bearer extracts the key of an Authorization header ("" when absent or not a bearer token).
func Bearer(header string) string {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}
