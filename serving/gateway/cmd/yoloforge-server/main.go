// Command yoloforge-server serves a yoloforge bundle's model over HTTP (serving/openapi.yaml).
//
//	yoloforge-server [serve] [-config config.yaml]    run the server
//	yoloforge-server keys create -name NAME            make an API key (stored hashed in Postgres), print it once
//	yoloforge-server keys revoke -name NAME            revoke a name's keys
//	yoloforge-server healthcheck [-url URL]            exit 0 when /healthz answers (the container health check)
//	yoloforge-server config -list|-defaults            the environment overrides, or the default config.yaml
//	yoloforge-server schema                            print the SQL schema
//	yoloforge-server bench [-images DIR] [-write]      time this machine per engine layout; -write keeps the fastest
//
// One file per command: serve.go, keys.go, healthcheck.go, configcmd.go, bench.go.
package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/yoloforge/yoloforge/serving/gateway/internal/config"
	"github.com/yoloforge/yoloforge/serving/gateway/internal/store"
)

func main() {
	args := os.Args[1:]
	cmd := "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(args)
	case "keys":
		err = keys(args)
	case "healthcheck":
		err = healthcheck(args)
	case "config":
		err = configCmd(args, os.Stdout)
	case "schema":
		fmt.Print(store.Schema())
	case "bench":
		err = benchCmd(args, os.Stdout)
	default:
		err = fmt.Errorf("unknown command %q: serve, keys create|revoke, healthcheck, config, schema or bench", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "yoloforge-server:", err)
		os.Exit(1)
	}
}

func defaultConfigPath() string {
	if p := os.Getenv("YOLOFORGE_CONFIG"); p != "" {
		return p
	}
	return "config.yaml"
}

func loadConfig(path string) (config.Config, error) {
	cfg, err := config.Load(path, os.LookupEnv)
	if err != nil {
		return cfg, fmt.Errorf("config %s:\n%w", path, err)
	}
	return cfg, nil
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}
