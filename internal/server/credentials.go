package server

import (
	"crypto/tls"
	"fmt"
	"strings"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/certs"
	"github.com/seamark/seamark/internal/config"
	"github.com/seamark/seamark/internal/store"
)

// tlsFiles are the files of server.tls.
func tlsFiles(t config.TLS) certs.Files {
	return certs.Files{CertFile: t.CertFile, KeyFile: t.KeyFile, ClientCAFile: t.ClientCAFile, ClientAuth: t.ClientAuth}
}

// storeCredentials loads server.etcd_tls and the etcd user's password.
func storeCredentials(sc config.Server) (store.Options, error) {
	var o store.Options
	if sc.EtcdTLS.Enabled() {
		c, err := api.TLSFiles{CAFile: sc.EtcdTLS.CAFile, CertFile: sc.EtcdTLS.CertFile, KeyFile: sc.EtcdTLS.KeyFile}.Config()
		if err != nil {
			return o, fmt.Errorf("start server: server.etcd_tls: %w", err)
		}
		o.TLS = c
	} else {
		for _, e := range sc.EtcdEndpoints {
			if strings.HasPrefix(e, "https://") {
				o.TLS = &tls.Config{MinVersion: tls.VersionTLS12} // the system's roots
				break
			}
		}
	}
	if sc.EtcdUsername != "" {
		pw, err := sc.EtcdPassword()
		if err != nil {
			return o, fmt.Errorf("start server: %w", err)
		}
		o.Username, o.Password = sc.EtcdUsername, pw
	}
	return o, nil
}
