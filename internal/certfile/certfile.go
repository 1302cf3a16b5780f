package certfile

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// checkEvery bounds how often the files are looked at: handshakes do not stat twice a second.
const checkEvery = time.Second

// Loader holds the current certificate of a cert/key file pair.
type Loader struct {
	certFile, keyFile string
	log               *slog.Logger

	mu        sync.Mutex
	cert      *tls.Certificate
	certMod   time.Time
	keyMod    time.Time
	checkedAt time.Time
}

// New loads the pair once; a pair that does not load is an error here, and later a
// warning (the previous certificate stays in use).
func New(certFile, keyFile string, log *slog.Logger) (*Loader, error) {
	l := &Loader{certFile: certFile, keyFile: keyFile, log: log}
	if err := l.reload(); err != nil {
		return nil, err
	}
	return l, nil
}

func modTime(p string) (time.Time, error) {
	st, err := os.Stat(p)
	if err != nil {
		return time.Time{}, err
	}
	return st.ModTime(), nil
}

func (l *Loader) reload() error {
	cm, err := modTime(l.certFile)
	if err != nil {
		return fmt.Errorf("tls certificate: %w", err)
	}
	km, err := modTime(l.keyFile)
	if err != nil {
		return fmt.Errorf("tls key: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(l.certFile, l.keyFile)
	if err != nil {
		return fmt.Errorf("tls certificate %s and key %s: %w", l.certFile, l.keyFile, err)
	}
	l.cert, l.certMod, l.keyMod = &cert, cm, km
	return nil
}

// GetCertificate is for tls.Config: the current certificate, reloaded when either file
// changed.
func (l *Loader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if time.Since(l.checkedAt) >= checkEvery {
		l.checkedAt = time.Now()
		cm, cerr := modTime(l.certFile)
		km, kerr := modTime(l.keyFile)
		if cerr == nil && kerr == nil && (!cm.Equal(l.certMod) || !km.Equal(l.keyMod)) {
			if err := l.reload(); err != nil {
				// Half-written renewal, or a mismatched pair: keep serving the old one.
				l.log.Warn("new TLS certificate not loaded; keeping the current one", slog.Any("err", err))
			} else {
				l.log.Info("TLS certificate reloaded", slog.String("cert", l.certFile))
			}
		}
	}
	return l.cert, nil
}

// Config returns a server TLS configuration using the loader.
func (l *Loader) Config() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: l.GetCertificate, NextProtos: []string{"h2", "http/1.1"}}
}
