package main

import (
	"bytes"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/yoloforge/yoloforge/serving/gateway/internal/config"
)

func TestConfigListPrintsEveryOverrideOnItsOwnLine(t *testing.T) {
	var out bytes.Buffer
	if err := configCmd([]string{"-list"}, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(out.String())
	if strings.Join(lines, ",") != strings.Join(config.Overrides, ",") {
		t.Fatalf("listed %v, want %v", lines, config.Overrides)
	}
}

func TestConfigDefaultsReadBackAsTheDefaults(t *testing.T) {
	var out bytes.Buffer
	if err := configCmd([]string{"-defaults"}, &out); err != nil {
		t.Fatal(err)
	}
	var got config.Config
	if err := yaml.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("the defaults do not read back: %v\n%s", err, out.String())
	}
	if got.Batcher != config.Default().Batcher || got.Postgres.ConnectTimeout != config.Default().Postgres.ConnectTimeout {
		t.Fatalf("read back %+v, want %+v", got, config.Default())
	}
}

func TestConfigWithoutAFlagSaysHowToUseIt(t *testing.T) {
	if err := configCmd(nil, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "usage") {
		t.Fatalf("want a usage error, got %v", err)
	}
}
