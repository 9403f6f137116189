package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteLayoutSetsTheLayoutAndKeepsTheRestOfTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	original := "# the bundle's configuration\nlisten: :8080\nmodel:\n  imgsz: 64\n  files:\n    1: model/m.onnx\n" +
		"engine:\n  provider: cpu\n  threads: 0 # shared out\n  workers: 2\nbatcher:\n  max_batch_size: 8\n  batch_wait: 5ms\n"
	if err := os.WriteFile(path, []byte(original), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := WriteLayout(path, Layout{Workers: 1, Threads: 4, Batch: 1}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	text := string(data)
	for _, kept := range []string{"# the bundle's configuration", "listen: :8080", "batch_wait: 5ms", "provider: cpu",
		"# shared out", "1: model/m.onnx"} {
		if !strings.Contains(text, kept) {
			t.Errorf("%q lost:\n%s", kept, text)
		}
	}
	cfg := Default()
	if err := (&cfg).decodeFile(path); err != nil {
		t.Fatal(err)
	}
	if cfg.Engine.Workers != 1 || cfg.Engine.Threads != 4 || cfg.Batcher.MaxBatchSize != 1 {
		t.Errorf("layout not written: %+v %+v", cfg.Engine, cfg.Batcher)
	}
	if info, _ := os.Stat(path); info.Mode().Perm() != 0o640 {
		t.Errorf("mode changed to %v", info.Mode().Perm())
	}
}

func TestWriteLayoutAddsSectionsTheFileLeftToTheDefaults(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte("listen: :9000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteLayout(path, Layout{Workers: 2, Threads: 1, Batch: 4}); err != nil {
		t.Fatal(err)
	}
	cfg := Default()
	if err := (&cfg).decodeFile(path); err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != ":9000" || cfg.Engine.Workers != 2 || cfg.Engine.Threads != 1 || cfg.Batcher.MaxBatchSize != 4 {
		t.Errorf("got %+v", cfg)
	}
}

func TestWriteLayoutLeavesAFileItCannotReadAsItWas(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte("- a list\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteLayout(path, Layout{Workers: 1, Threads: 1, Batch: 1}); err == nil {
		t.Fatal("no error for a config that is not a mapping")
	}
	if data, _ := os.ReadFile(path); string(data) != "- a list\n" {
		t.Errorf("changed: %q", data)
	}
}
