package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfSigned writes a certificate for 127.0.0.1 and returns the pool that trusts it.
func selfSigned(t *testing.T, certFile, keyFile, cn string) *x509.CertPool {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	// Written beside and renamed, as a renewal tool does.
	for name, block := range map[string]*pem.Block{certFile: {Type: "CERTIFICATE", Bytes: der}, keyFile: {Type: "EC PRIVATE KEY", Bytes: kder}} {
		os.WriteFile(name+".new", pem.EncodeToMemory(block), 0o600)
		os.Rename(name+".new", name)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}

func TestServeTerminatesTLSAndReloads(t *testing.T) {
	env := servedEnv(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	pool := selfSigned(t, certFile, keyFile, "first")
	addr := freeAddr(t)
	env = append(env, "REGIONMIRROR_SERVER_LISTEN="+addr, "REGIONMIRROR_SERVER_TLS_CERT="+certFile, "REGIONMIRROR_SERVER_TLS_KEY="+keyFile)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	var stderr bytes.Buffer
	go func() {
		done <- run(ctx, []string{"serve", "--access-log=false"}, strings.NewReader(""), io.Discard, &stderr, env)
	}()

	// A new connection per request, so every request shows the certificate of the moment.
	get := func(pool *x509.CertPool) (string, error) {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
			TLSClientConfig: &tls.Config{RootCAs: pool}}}
		res, err := c.Get("https://" + addr + "/healthz")
		if err != nil {
			return "", err
		}
		defer res.Body.Close()
		return res.TLS.PeerCertificates[0].Subject.CommonName, nil
	}
	var cn string
	var err error
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if cn, err = get(pool); err == nil {
			break
		}
	}
	if err != nil || cn != "first" {
		t.Fatalf("https: %q %v\n%s", cn, err, stderr.String())
	}
	// Plain HTTP on the TLS port is refused.
	if res, err := http.Get("http://" + addr + "/healthz"); err == nil && res.StatusCode == 200 {
		t.Error("plain HTTP served on the TLS listener")
	}

	pool2 := selfSigned(t, certFile, keyFile, "renewed")
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if cn, err = get(pool2); err == nil && cn == "renewed" {
			break
		}
	}
	if cn != "renewed" {
		t.Fatalf("after renewal: %q %v", cn, err)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("serve exited %d: %s", code, stderr.String())
	}
}

func TestServeTLSConfigErrors(t *testing.T) {
	env := append(servedEnv(t), "REGIONMIRROR_SERVER_LISTEN="+freeAddr(t))
	_, errs, code := cli(t, append(env, "REGIONMIRROR_SERVER_TLS_CERT=/nonexistent/cert.pem"), "serve")
	if code != exitBadInput || !strings.Contains(errs, "server.tls_cert") {
		t.Errorf("cert without key: %d %q", code, errs)
	}
	_, errs, code = cli(t, append(env, "REGIONMIRROR_SERVER_TLS_CERT=/nonexistent/cert.pem", "REGIONMIRROR_SERVER_TLS_KEY=/nonexistent/key.pem"), "serve")
	if code != exitBadInput || !strings.Contains(errs, "/nonexistent/cert.pem") {
		t.Errorf("missing files: %d %q", code, errs)
	}
}
