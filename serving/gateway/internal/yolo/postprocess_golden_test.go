package yolo

import (
	"math"
	"testing"
)

// testdata/postprocess_golden.json is engines.processing.postprocess's answer on random raw outputs, written by
// scripts/make_gateway_golden.py (tests/test_golden.py keeps it current).
type postprocessGolden struct {
	Task    string
	Names   []string
	Imgsz   int
	Height  int
	Width   int
	Shape   []int64
	Data    []float32
	Conf    float64
	IoU     float64 `json:"iou"`
	MaxDet  int     `json:"max_det"`
	TopK    int     `json:"top_k"`
	Boxes   [][4]float64
	Scores  []float64
	Classes []int
	Top     []int
	Probs   []float64
}

func TestPostprocessGivesPythonsAnswers(t *testing.T) {
	var cases []postprocessGolden
	readTestdata(t, "postprocess_golden.json", &cases)
	for i, c := range cases {
		m := Model{Task: c.Task, Names: c.Names, Imgsz: c.Imgsz}
		o := Options{Conf: c.Conf, IoU: c.IoU, MaxDet: c.MaxDet, TopK: c.TopK}
		got, err := Postprocess(m, []Output{{Shape: c.Shape, Data: c.Data}}, LetterboxPlacement(c.Height, c.Width, c.Imgsz), o)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if c.Task == "classify" {
			if len(got.Top) != len(c.Top) {
				t.Fatalf("case %d: %d classes, Python gives %d", i, len(got.Top), len(c.Top))
			}
			for k, cs := range got.Top {
				if cs.ClassID != c.Top[k] || math.Abs(cs.Confidence-c.Probs[k]) > 1e-6 {
					t.Errorf("case %d: top %d is %d (%.6f), Python gives %d (%.6f)", i, k, cs.ClassID, cs.Confidence,
						c.Top[k], c.Probs[k])
				}
			}
			continue
		}
		if len(got.Detections) != len(c.Boxes) {
			t.Fatalf("case %d (conf %g, iou %g, max_det %d): %d detections, Python gives %d", i, c.Conf, c.IoU,
				c.MaxDet, len(got.Detections), len(c.Boxes))
		}
		for k, d := range got.Detections {
			if d.ClassID != c.Classes[k] || math.Abs(d.Confidence-c.Scores[k]) > 1e-6 {
				t.Errorf("case %d, detection %d: class %d score %.6f, Python gives class %d score %.6f", i, k,
					d.ClassID, d.Confidence, c.Classes[k], c.Scores[k])
			}
			for j := range 4 {
				if math.Abs(d.Box[j]-c.Boxes[k][j]) > 1e-3 {
					t.Errorf("case %d, detection %d: box %v, Python gives %v", i, k, d.Box, c.Boxes[k])
					break
				}
			}
		}
	}
}
