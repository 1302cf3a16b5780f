package scanner

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/internal/config"
)

// A scan starts from NewConfig: its timeout bounds reads through public URLs and storage
// requests alike, and a zero Config (which once meant "defaults") is refused before
// anything happens.
func TestConfig(t *testing.T) {
	c := NewConfig(config.Scan{Concurrency: 2, DownAfter: 4, UpAfter: 5, Timeout: config.Duration(7 * time.Second)})
	if c.Concurrency != 2 || c.DownAfter != 4 || c.UpAfter != 5 ||
		c.StoreOptions.Timeout != 7*time.Second || c.HTTPClient.Timeout != 7*time.Second || c.Deep {
		t.Errorf("NewConfig = %+v", c)
	}
	if err := c.check(); err != nil {
		t.Error(err)
	}
	// Scan refuses before it touches the database (nil here).
	_, err := (&Scanner{}).Scan(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "concurrency 0") {
		t.Errorf("Scan with a zero Config = %v, want the concurrency refused", err)
	}
}
