package yolo

import (
	"fmt"
	"math"
	"sort"
)

const (
	maxWH  = 7680  // class offset for per-class NMS in one pass (Ultralytics' value)
	maxNMS = 30000 // candidates kept for NMS, by confidence
)

// Model is what post-processing needs to know of the model.
type Model struct {
	Task  string // detect, segment or classify
	Names []string
	Imgsz int
}

// Options are a request's post-processing parameters.
type Options struct {
	Conf   float64
	IoU    float64
	MaxDet int
	TopK   int
}

// DefaultOptions are the contract's defaults.
func DefaultOptions() Options { return Options{Conf: 0.25, IoU: 0.7, MaxDet: 300, TopK: 5} }

// Output is one of the model's outputs for one image: its shape without the batch axis, and its values.
type Output struct {
	Shape []int64
	Data  []float32
}

// Detection is one box of the answer, in the original image's pixels.
type Detection struct {
	ClassID    int          `json:"class_id"`
	ClassName  string       `json:"class_name"`
	Confidence float64      `json:"confidence"`
	Box        [4]float64   `json:"box"`
	Polygon    [][2]float64 `json:"polygon,omitempty"`
}

// ClassScore is one class of a classify answer.
type ClassScore struct {
	ClassID    int     `json:"class_id"`
	ClassName  string  `json:"class_name"`
	Confidence float64 `json:"confidence"`
}

// Result is the model's answer for one image.
type Result struct {
	Detections []Detection  `json:"detections,omitempty"`
	Top        []ClassScore `json:"top,omitempty"`
}

// Postprocess turns one image's raw outputs into its answer (engines.processing.postprocess).
func Postprocess(m Model, outs []Output, p Placement, o Options) (Result, error) {
	nc := len(m.Names)
	if m.Task == "classify" {
		if len(outs) < 1 || len(outs[0].Data) != nc {
			return Result{}, fmt.Errorf("classify output has %d values for %d classes", len(outs[0].Data), nc)
		}
		return Result{Top: topK(outs[0].Data, m.Names, o.TopK)}, nil
	}
	nm := 0
	if m.Task == "segment" {
		if len(outs) < 2 || len(outs[1].Shape) != 3 {
			return Result{}, fmt.Errorf("segment model needs a prototype output (nm, h, w), got %d outputs", len(outs))
		}
		nm = int(outs[1].Shape[0])
	}
	shape := outs[0].Shape
	if len(shape) != 2 {
		return Result{}, fmt.Errorf("detection output has shape %v, want 2 axes per image", shape)
	}
	end2end := shape[1] == int64(6+nm) && shape[0] != int64(4+nc+nm)
	if !end2end && shape[0] != int64(4+nc+nm) {
		return Result{}, fmt.Errorf("detection output has %d rows, want 4 boxes + %d classes + %d mask coefficients",
			shape[0], nc, nm)
	}
	rows := detectionRows(outs[0], nc, nm, o, end2end)
	var masks [][]bool
	if m.Task == "segment" {
		proto := outs[1]
		kept := rows[:0]
		for _, r := range rows {
			mask := boxMask(r, proto, m.Imgsz)
			if mask == nil { // no pixel inside its box at input size: Ultralytics' predict drops it too
				continue
			}
			kept = append(kept, r)
			masks = append(masks, unletterboxMask(mask, m.Imgsz, p))
		}
		rows = kept
	}
	res := Result{Detections: make([]Detection, len(rows))}
	for i, r := range rows {
		cls := int(r.cls)
		name := ""
		if cls >= 0 && cls < nc {
			name = m.Names[cls]
		}
		d := Detection{ClassID: cls, ClassName: name, Confidence: float64(r.conf), Box: scaleBox(r.box, p)}
		if masks != nil {
			d.Polygon = Polygon(masks[i], p.Width, p.Height)
		}
		res.Detections[i] = d
	}
	return res, nil
}

type row struct {
	box  [4]float32 // x1 y1 x2 y2 at input size
	conf float32
	cls  float32
	coef []float32
}

func detectionRows(out Output, nc, nm int, o Options, end2end bool) []row {
	if end2end { // (max_det, 6+nm): boxes, confidence, class already
		width := 6 + nm
		var rows []row
		for i := 0; i+width <= len(out.Data) && len(rows) < o.MaxDet; i += width {
			v := out.Data[i : i+width]
			if float64(v[4]) > o.Conf {
				rows = append(rows, row{box: [4]float32{v[0], v[1], v[2], v[3]}, conf: v[4], cls: v[5], coef: v[6:]})
			}
		}
		return rows
	}
	n := int(out.Shape[1])
	x := out.Data
	type cand struct {
		anchor int
		cls    int
		score  float32
	}
	var cands []cand
	for a := 0; a < n; a++ {
		best, bestC := x[4*n+a], 0
		for c := 1; c < nc; c++ {
			if v := x[(4+c)*n+a]; v > best {
				best, bestC = v, c
			}
		}
		if float64(best) > o.Conf {
			cands = append(cands, cand{a, bestC, best})
		}
	}
	if len(cands) > maxNMS {
		sort.SliceStable(cands, func(i, j int) bool { return cands[i].score > cands[j].score })
		cands = cands[:maxNMS]
	}
	boxes := make([][4]float64, len(cands))
	scores := make([]float64, len(cands))
	rows := make([]row, len(cands))
	for i, c := range cands {
		cx, cy, w, h := x[c.anchor], x[n+c.anchor], x[2*n+c.anchor], x[3*n+c.anchor]
		hw, hh := w/2, h/2
		b := [4]float32{cx - hw, cy - hh, cx + hw, cy + hh}
		off := float64(c.cls * maxWH)
		boxes[i] = [4]float64{float64(b[0]) + off, float64(b[1]) + off, float64(b[2]) + off, float64(b[3]) + off}
		scores[i] = float64(c.score)
		coef := make([]float32, nm)
		for k := 0; k < nm; k++ {
			coef[k] = x[(4+nc+k)*n+c.anchor]
		}
		rows[i] = row{box: b, conf: c.score, cls: float32(c.cls), coef: coef}
	}
	keep := NMS(boxes, scores, o.IoU, o.MaxDet)
	out2 := make([]row, len(keep))
	for i, k := range keep {
		out2[i] = rows[k]
	}
	return out2
}

// NMS is greedy non-maximum suppression: the indices kept, best first (engines.processing.nms). Each box, best
// first, is compared with the boxes kept so far (at most maxKeep), and the pass ends once maxKeep are kept: a
// barely trained model's thousands of scattered candidates cost a few hundred comparisons each at most, not one
// pass over all of them per kept box.
func NMS(boxes [][4]float64, scores []float64, iou float64, maxKeep int) []int {
	order := make([]int, len(scores))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(i, j int) bool { return scores[order[i]] > scores[order[j]] })
	keep := make([]int, 0, min(maxKeep, len(order)))
	for _, j := range order {
		if len(keep) >= maxKeep {
			break
		}
		suppressed := false
		for _, k := range keep {
			if IoU(boxes[k], boxes[j]) > iou {
				suppressed = true
				break
			}
		}
		if !suppressed {
			keep = append(keep, j)
		}
	}
	return keep
}

// IoU of two x1 y1 x2 y2 boxes.
func IoU(a, b [4]float64) float64 {
	w := math.Max(math.Min(a[2], b[2])-math.Max(a[0], b[0]), 0)
	h := math.Max(math.Min(a[3], b[3])-math.Max(a[1], b[1]), 0)
	inter := w * h
	areaA := (a[2] - a[0]) * (a[3] - a[1])
	areaB := (b[2] - b[0]) * (b[3] - b[1])
	return inter / (areaA + areaB - inter + 1e-9)
}

func scaleBox(b [4]float32, p Placement) [4]float64 {
	x1 := (float64(b[0]) - float64(p.PadX)) / p.GainX
	y1 := (float64(b[1]) - float64(p.PadY)) / p.GainY
	x2 := (float64(b[2]) - float64(p.PadX)) / p.GainX
	y2 := (float64(b[3]) - float64(p.PadY)) / p.GainY
	clip := func(v float64, hi int) float64 { return math.Min(math.Max(v, 0), float64(hi)) }
	return [4]float64{clip(x1, p.Width), clip(y1, p.Height), clip(x2, p.Width), clip(y2, p.Height)}
}

func topK(probs []float32, names []string, k int) []ClassScore {
	order := make([]int, len(probs))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(i, j int) bool { return probs[order[i]] > probs[order[j]] })
	k = min(k, len(order))
	top := make([]ClassScore, k)
	for i := 0; i < k; i++ {
		c := order[i]
		top[i] = ClassScore{ClassID: c, ClassName: names[c], Confidence: float64(probs[c])}
	}
	return top
}

// boxMask is one detection's mask at input size (imgsz x imgsz): prototype logits upsampled, > 0, inside its
// box; nil when no pixel is set.
func boxMask(r row, proto Output, imgsz int) []bool {
	nm, mh, mw := int(proto.Shape[0]), int(proto.Shape[1]), int(proto.Shape[2])
	logits := make([]float32, mh*mw)
	for k := 0; k < nm; k++ {
		c := r.coef[k]
		plane := proto.Data[k*mh*mw : (k+1)*mh*mw]
		for i, v := range plane {
			logits[i] += c * v
		}
	}
	up := ResizeFloat(logits, mw, mh, imgsz, imgsz)
	mask := make([]bool, imgsz*imgsz)
	any := false
	x1, y1, x2, y2 := r.box[0], r.box[1], r.box[2], r.box[3]
	for y := 0; y < imgsz; y++ {
		fy := float32(y)
		if fy < y1 || fy >= y2 {
			continue
		}
		for x := 0; x < imgsz; x++ {
			fx := float32(x)
			if fx >= x1 && fx < x2 && up[y*imgsz+x] > 0 {
				mask[y*imgsz+x] = true
				any = true
			}
		}
	}
	if !any {
		return nil
	}
	return mask
}

// unletterboxMask crops the padding off an input-size mask and resizes it to the original image (bilinear, > 0.5).
func unletterboxMask(mask []bool, imgsz int, p Placement) []bool {
	content := make([]float32, p.NewW*p.NewH)
	for y := 0; y < p.NewH; y++ {
		for x := 0; x < p.NewW; x++ {
			if mask[(y+p.PadY)*imgsz+x+p.PadX] {
				content[y*p.NewW+x] = 1
			}
		}
	}
	up := ResizeFloat(content, p.NewW, p.NewH, p.Width, p.Height)
	out := make([]bool, len(up))
	for i, v := range up {
		out[i] = v > 0.5
	}
	return out
}
