package main

import (
	"crypto"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/confide-fl/confide/client"
	"github.com/confide-fl/confide/secagg"
	"github.com/confide-fl/confide/server"
)

// serverTLS checks the server's transport settings and loads its mutual-TLS configuration;
// nil with insecure (plaintext, after a warning).
func serverTLS(sf serverFile) (*tls.Config, error) {
	set := sf.TLSCert != "" || sf.TLSKey != "" || sf.ClientCA != ""
	switch {
	case sf.Insecure && set:
		return nil, &exitError{code: 2, err: errors.New("--insecure with --tls-cert, --tls-key or --client-ca (insecure, tls_cert, tls_key, client_ca): choose TLS or plaintext")}
	case sf.Insecure:
		slog.Warn("--insecure: serving plaintext gRPC; anyone on the network can read and alter the traffic, and clients are whoever they say they are (for tests on a trusted network only; use --tls-cert, --tls-key and --client-ca)")
		return nil, nil
	case !set:
		return nil, &exitError{code: 2, err: errors.New("confide server serves TLS only: set --tls-cert and --tls-key (the server's certificate and key) and --client-ca (the CA certificate that issued the clients' certificates), or tls_cert, tls_key and client_ca in the config; create them with 'confide ca init' and 'confide ca issue --server --name server --host HOST'; --insecure serves plaintext, for tests on a trusted network only")}
	}
	for _, f := range []struct{ flag, key, val string }{
		{"--tls-cert", "tls_cert", sf.TLSCert}, {"--tls-key", "tls_key", sf.TLSKey}, {"--client-ca", "client_ca", sf.ClientCA},
	} {
		if f.val == "" {
			return nil, &exitError{code: 2, err: fmt.Errorf("%s (%s) is not set: mutual TLS needs --tls-cert, --tls-key and --client-ca (see 'confide ca --help')", f.flag, f.key)}
		}
	}
	tc, err := server.TLSConfig(sf.TLSCert, sf.TLSKey, sf.ClientCA)
	if err != nil {
		return nil, &exitError{code: 2, err: fmt.Errorf("%w (check --tls-cert, --tls-key and --client-ca)", err)}
	}
	return tc, nil
}

// clientTLS checks the client's transport settings and loads its mutual-TLS
// configuration; nil with --insecure (plaintext, after a warning).
func clientTLS(o clientOptions) (*tls.Config, error) {
	set := o.ca != "" || o.tlsCert != "" || o.tlsKey != ""
	switch {
	case o.insecure && set:
		return nil, &exitError{code: 2, err: errors.New("--insecure with --ca, --tls-cert or --tls-key: choose TLS or plaintext")}
	case o.insecure:
		slog.Warn("--insecure: plaintext gRPC; anyone on the network can read and alter the traffic, this client's updates included, and the server is not authenticated (for tests on a trusted network only; use --ca, --tls-cert and --tls-key)")
		return nil, nil
	case !set:
		return nil, &exitError{code: 2, err: errors.New("confide client connects over TLS only: set --ca (the federation's CA certificate, ca.crt) and --tls-cert and --tls-key (this client's certificate and key, from 'confide ca issue --name NAME'); --insecure connects in plaintext, for tests on a trusted network only")}
	}
	for _, f := range []struct{ flag, val string }{{"--ca", o.ca}, {"--tls-cert", o.tlsCert}, {"--tls-key", o.tlsKey}} {
		if f.val == "" {
			return nil, &exitError{code: 2, err: fmt.Errorf("%s is not set: mutual TLS needs --ca, --tls-cert and --tls-key (the server admits only clients with a certificate of the federation's CA)", f.flag)}
		}
	}
	tc, err := client.TLSConfig(o.ca, o.tlsCert, o.tlsKey)
	if err != nil {
		return nil, &exitError{code: 2, err: fmt.Errorf("%w (check --ca, --tls-cert and --tls-key)", err)}
	}
	return tc, nil
}

// clientIdentity is a client's identity in authenticated secure aggregation: its TLS
// certificate and key sign its key material and uploads, and the federation's CA (--ca)
// verifies everyone else's.
func clientIdentity(tc *tls.Config, caFile string) (*secagg.Signer, *secagg.Verifier, error) {
	v, err := caVerifier(caFile, "--ca")
	if err != nil {
		return nil, nil, err
	}
	signer, err := identitySigner(tc, v, "--tls-cert", "--tls-key")
	if err != nil {
		return nil, nil, err
	}
	return signer, v, nil
}

// identitySigner is the secure-aggregation Signer of the certificate and key in tc, after
// checking that v's CA issued it as a client certificate; certFlag and keyFlag name where
// they came from in errors.
func identitySigner(tc *tls.Config, v *secagg.Verifier, certFlag, keyFlag string) (*secagg.Signer, error) {
	cert := tc.Certificates[0]
	key, ok := cert.PrivateKey.(crypto.Signer)
	if !ok || len(cert.Certificate) == 0 {
		return nil, &exitError{code: 2, err: fmt.Errorf("%s: the key cannot sign (use a key from 'confide ca issue')", keyFlag)}
	}
	signer, err := secagg.NewSigner(cert.Certificate[0], key)
	if err != nil {
		return nil, &exitError{code: 2, err: fmt.Errorf("%s: %w", certFlag, err)}
	}
	if _, err := v.Certify(cert.Certificate[0]); err != nil {
		return nil, &exitError{code: 2, err: fmt.Errorf("%s is not a client certificate of --ca: %w", certFlag, err)}
	}
	return signer, nil
}

// caVerifier checks identities against the CA certificate in file.
func caVerifier(file, flag string) (*secagg.Verifier, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, &exitError{code: 2, err: fmt.Errorf("%s: %w", flag, err)}
	}
	v, err := secagg.NewVerifierFromPEM(pem, nil)
	if err != nil {
		return nil, &exitError{code: 2, err: fmt.Errorf("%s: %w", flag, err)}
	}
	return v, nil
}
