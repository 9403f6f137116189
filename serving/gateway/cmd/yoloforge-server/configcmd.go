package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/yoloforge/yoloforge/serving/gateway/internal/config"
)

// configCmd tells other programs (the bundle exporter) the server's settings, so they never read its source:
// -list prints the environment overrides, one per line; -defaults prints the default config.yaml.
func configCmd(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("config", flag.ContinueOnError)
	list := fs.Bool("list", false, "print the YOLOFORGE_* environment overrides, one per line")
	defaults := fs.Bool("defaults", false, "print the default configuration as YAML")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case *list:
		_, err := fmt.Fprintln(out, strings.Join(config.Overrides, "\n"))
		return err
	case *defaults:
		data, err := yaml.Marshal(config.Default())
		if err != nil {
			return fmt.Errorf("config -defaults: %w", err)
		}
		_, err = out.Write(data)
		return err
	default:
		return errors.New("usage: yoloforge-server config -list | -defaults")
	}
}
