package server

import (
	"net/http"
	"testing"

	"github.com/regionmirror/regionmirror/internal/config"
)

// TestPurgeAPIHostileRegionName: a region name PostgreSQL cannot take as text (a NUL
// byte, invalid UTF-8) is no region: 404, not a 503 that tells a CI script to retry an
// outage. (Found by review: it was passed to the database unchecked.)
func TestPurgeAPIHostileRegionName(t *testing.T) {
	w := startOnDemand(t, onDemandOptions{tokens: []string{config.HashToken("s3cret-token")}})
	for _, name := range []string{"od%00", "%FF%FE", "OD", "od%2Fx"} {
		code, _, body := purgeReq(t, w.url+"/api/v1/regions/"+name+"/objects/"+odHello, "Bearer s3cret-token")
		if code != http.StatusNotFound {
			t.Errorf("region %q: %d %v, want 404", name, code, body)
		}
	}
}
