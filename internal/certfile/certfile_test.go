package certfile

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// writePair writes a self-signed certificate for 127.0.0.1 with the given common name.
func writePair(t *testing.T, dir, cn string, mod time.Time) (string, string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	cf, kf := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(cf, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(kf, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	os.Chtimes(cf, mod, mod)
	os.Chtimes(kf, mod, mod)
	return cf, kf
}

func commonName(t *testing.T, l *Loader) string {
	t.Helper()
	c, err := l.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	x, _ := x509.ParseCertificate(c.Certificate[0])
	return x.Subject.CommonName
}

func TestReloadOnChange(t *testing.T) {
	dir := t.TempDir()
	cf, kf := writePair(t, dir, "first", time.Now().Add(-time.Minute))
	l, err := New(cf, kf, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if cn := commonName(t, l); cn != "first" {
		t.Fatalf("cn %s", cn)
	}
	writePair(t, dir, "second", time.Now())
	l.checkedAt = time.Time{} // do not wait for the next check
	if cn := commonName(t, l); cn != "second" {
		t.Fatalf("after renewal: cn %s", cn)
	}
	// A broken renewal keeps the last good certificate.
	os.WriteFile(cf, []byte("garbage"), 0o600)
	os.Chtimes(cf, time.Now().Add(time.Minute), time.Now().Add(time.Minute))
	l.checkedAt = time.Time{}
	if cn := commonName(t, l); cn != "second" {
		t.Fatalf("after a broken renewal: cn %s", cn)
	}
	if _, err := New(filepath.Join(dir, "none.pem"), kf, nil); err == nil {
		t.Error("missing certificate accepted")
	}
}
