package labgen

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"time"
)

// certNotBefore predates every generation of the presets: the certificate
// was already installed when the backups were taken.
var certNotBefore = time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)

// certLifetime keeps the certificate valid long after the store is written,
// so that check.certificate passes on a restored lab for years.
const certLifetime = 10 * 365 * 24 * time.Hour

// SelfSignedPEM returns a bm_cert.pem for host as BlueMind concatenates it:
// the certificate, its private key (PKCS#8) and the CA, which for a
// self-signed certificate is the certificate itself. The key is an ECDSA
// P-256 key made from crypto/rand at each call: no key material is ever
// committed, and two calls never return the same file.
func SelfSignedPEM(host string, now time.Time) (string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", fmt.Errorf("generate certificate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		return "", fmt.Errorf("generate certificate serial: %w", err)
	}
	notBefore := certNotBefore
	if now.Before(notBefore) {
		notBefore = now.Add(-time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: host, Organization: []string{"prapush lab"}},
		DNSNames:              []string{host},
		NotBefore:             notBefore,
		NotAfter:              now.Add(certLifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", fmt.Errorf("create certificate: %w", err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", fmt.Errorf("marshal certificate key: %w", err)
	}
	crt := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	k := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})
	return string(crt) + string(k) + string(crt), nil
}
