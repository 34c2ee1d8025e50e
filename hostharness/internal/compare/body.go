package compare

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
)

// Body is a request body: literal text, or Random bytes from a ChaCha8
// stream seeded with Seed, generated as it is sent so that even hundreds
// of MiB are never held in memory.
type Body struct {
	Text   *string `json:"text,omitempty"`
	Random int64   `json:"random,omitempty"`
	Seed   uint64  `json:"seed,omitempty"`
}

func (b *Body) check() error {
	if (b.Text != nil) == (b.Random > 0) {
		return fmt.Errorf("body: want exactly one of text or random (a positive size)")
	}
	return nil
}

// Len is the body's size in bytes; a nil Body has none.
func (b *Body) Len() int64 {
	switch {
	case b == nil:
		return 0
	case b.Text != nil:
		return int64(len(*b.Text))
	default:
		return b.Random
	}
}

// Reader returns a fresh reader of the body's bytes.
func (b *Body) Reader() io.Reader {
	switch {
	case b == nil:
		return strings.NewReader("")
	case b.Text != nil:
		return strings.NewReader(*b.Text)
	default:
		var seed [32]byte
		binary.LittleEndian.PutUint64(seed[:], b.Seed)
		return io.LimitReader(rand.NewChaCha8(seed), b.Random)
	}
}
