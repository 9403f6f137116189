package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/yoloforge/yoloforge/serving/gateway/internal/auth"
	"github.com/yoloforge/yoloforge/serving/gateway/internal/config"
	"github.com/yoloforge/yoloforge/serving/gateway/internal/store"
)

func keys(args []string) error {
	if len(args) == 0 || (args[0] != "create" && args[0] != "revoke") {
		return errors.New("usage: yoloforge-server keys create|revoke -name NAME [-config config.yaml]")
	}
	fs := flag.NewFlagSet("keys "+args[0], flag.ContinueOnError)
	path := fs.String("config", defaultConfigPath(), "config file (YOLOFORGE_CONFIG)")
	name := fs.String("name", "", "who the key is for (required)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *name == "" {
		return errors.New("-name is required (who or what the key is for)")
	}
	cfg, err := config.Load(*path, os.LookupEnv)
	if err != nil && cfg.Postgres.DSN == "" {
		return err
	}
	if !cfg.Postgres.Enabled {
		return fmt.Errorf("%w: keys live in Postgres; without it, set YOLOFORGE_API_KEYS", store.ErrDisabled)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	db, err := store.Open(ctx, cfg.Postgres.DSN, store.Options{Batch: 1, Interval: time.Second, Buffer: 1,
		ConnectTimeout: cfg.Postgres.ConnectTimeout.Duration}, newLogger("warn"))
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		return fmt.Errorf("%w (is Postgres running at %s?)", err, cfg.Postgres.DSN)
	}
	if args[0] == "revoke" {
		n, err := db.RevokeKey(ctx, *name)
		if err != nil {
			return err
		}
		fmt.Printf("revoked %d key(s) named %q (servers drop them within auth.refresh)\n", n, *name)
		return nil
	}
	key, err := auth.NewKey()
	if err != nil {
		return err
	}
	if err := db.CreateKey(ctx, *name, auth.Hash(key)); err != nil {
		return err
	}
	fmt.Println(key)
	fmt.Fprintf(os.Stderr, "API key for %q created; it is shown only now (Postgres keeps its hash). Use it as: "+
		"Authorization: Bearer <key>\n", *name)
	return nil
}
