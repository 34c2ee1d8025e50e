package echo

import (
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// ServerConfig holds the http.Server limits of the echo service.
type ServerConfig struct {
	// ReadHeaderTimeout bounds how long a client may take to send headers.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds how long a client may take to send a whole
	// request, body included, so that a body trickled at 1 byte/s cannot
	// hold a connection (and the guest's memory for it) for ever.
	ReadTimeout time.Duration
	// WriteTimeout bounds how long a response may take, from the end of
	// the request's headers, against a client that reads it slowly.
	WriteTimeout time.Duration
	// IdleTimeout bounds how long a keep-alive connection may sit idle.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the request line and headers.
	MaxHeaderBytes int
	// NetHTTP serves with net/http's own server instead of wasihttp's
	// HTTP/1.1 fast path (wasihttp.WithNetHTTP).
	NetHTTP bool
}

// Environment variables read by ServerConfigFromEnv.
const (
	EnvReadHeaderTimeout = "ECHO_READ_HEADER_TIMEOUT"
	EnvReadTimeout       = "ECHO_READ_TIMEOUT"
	EnvWriteTimeout      = "ECHO_WRITE_TIMEOUT"
	EnvIdleTimeout       = "ECHO_IDLE_TIMEOUT"
	EnvMaxHeaderBytes    = "ECHO_MAX_HEADER_BYTES"
	// EnvHTTPServer is "fast" (wasihttp's fast path, the default) or
	// "net/http" (net/http's own server).
	EnvHTTPServer = "ECHO_HTTP_SERVER"
)

// DefaultServerConfig returns the limits used when the environment sets none.
func DefaultServerConfig() ServerConfig {
	return ServerConfig{
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    http.DefaultMaxHeaderBytes,
	}
}

// ServerConfigFromEnv returns DefaultServerConfig overridden by the
// ECHO_* variables that getenv reports. Durations use time.ParseDuration.
func ServerConfigFromEnv(getenv func(string) string) (ServerConfig, error) {
	cfg := DefaultServerConfig()
	durations := []struct {
		key string
		dst *time.Duration
	}{
		{EnvReadHeaderTimeout, &cfg.ReadHeaderTimeout},
		{EnvReadTimeout, &cfg.ReadTimeout},
		{EnvWriteTimeout, &cfg.WriteTimeout},
		{EnvIdleTimeout, &cfg.IdleTimeout},
	}
	for _, d := range durations {
		v := getenv(d.key)
		if v == "" {
			continue
		}
		parsed, err := time.ParseDuration(v)
		if err != nil || parsed <= 0 {
			return cfg, fmt.Errorf("%s=%q: want a positive duration such as 10s", d.key, v)
		}
		*d.dst = parsed
	}
	if v := getenv(EnvMaxHeaderBytes); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return cfg, fmt.Errorf("%s=%q: want a positive byte count", EnvMaxHeaderBytes, v)
		}
		cfg.MaxHeaderBytes = n
	}
	switch v := getenv(EnvHTTPServer); v {
	case "", "fast":
	case "net/http":
		cfg.NetHTTP = true
	default:
		return cfg, fmt.Errorf("%s=%q: want fast or net/http", EnvHTTPServer, v)
	}
	return cfg, nil
}

// NewServer returns an http.Server for handler with cfg's limits, serving
// HTTP/1.1 and unencrypted HTTP/2 (prior knowledge) alike.
func NewServer(handler http.Handler, cfg ServerConfig) *http.Server {
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		Protocols:         &protocols,
	}
}
