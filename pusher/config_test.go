package pusher

import (
	"context"
	"strings"
	"testing"
)

// A push starts from NewConfig: a zero Config (which once meant "defaults") is refused
// before anything happens, and the sizes are fitted to the memory budget.
func TestConfigCheck(t *testing.T) {
	small := DefaultConfig()
	small.MemoryBudget = 8 << 20
	noClient := DefaultConfig()
	noClient.HTTPClient = nil
	for _, tc := range []struct {
		name              string
		cfg               Config
		err               string
		threshold, partSz int64
	}{
		{"zero", Config{}, "concurrency 0", 0, 0},
		{"no HTTP client", noClient, "no HTTP client", 0, 0},
		{"defaults", DefaultConfig(), "", 64 << 20, 16 << 20},
		{"small budget", small, "", 8 << 20, 8 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.cfg.check()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("check() = %v, want an error with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.MultipartThreshold != tc.threshold || got.PartSize != tc.partSz {
				t.Errorf("threshold, part size = %d, %d; want %d, %d", got.MultipartThreshold, got.PartSize, tc.threshold, tc.partSz)
			}
		})
	}
	// Push refuses before it touches the database (nil here).
	if _, err := (&Pusher{}).Push(context.Background(), nil); err == nil {
		t.Error("Push with a zero Config: no error")
	}
}
