package yolo

import "math"

// OpenCV's fixed-point bilinear resize of 8-bit images (cv2.resize INTER_LINEAR), reproduced exactly so the
// letterboxed tensor is the one the Python side feeds: 11-bit weights, a horizontal then a vertical pass.
const resizeCoefBits = 11
const resizeCoefScale = 1 << resizeCoefBits

type linearTap struct {
	index  [2]int   // source indices, clamped to the image
	weight [2]int32 // fixed-point weights, summing to resizeCoefScale
}

// tapPosition is where OpenCV samples output position d of a src -> dst resize: the first source index (not yet
// clamped to the image) and the fraction towards the next one. With clampFraction, a position past an edge takes
// the edge pixel whole.
func tapPosition(d, src, dst int, clampFraction bool) (int, float32) {
	scale := float64(src) / float64(dst)
	f := float32((float64(d)+0.5)*scale - 0.5)
	s := int(math.Floor(float64(f)))
	f -= float32(s)
	if clampFraction && s < 0 {
		s, f = 0, 0
	}
	if clampFraction && s >= src-1 {
		s, f = src-1, 0
	}
	return s, f
}

// linearTaps are OpenCV's: columns past an edge take the edge pixel whole (clampFraction), while rows past an
// edge keep their fractional weights on the repeated edge row, which rounds differently in the vertical pass.
func linearTaps(src, dst int, clampFraction bool) []linearTap {
	taps := make([]linearTap, dst)
	for d := range taps {
		s, f := tapPosition(d, src, dst, clampFraction)
		w0 := int32(math.RoundToEven(float64((1 - f) * resizeCoefScale)))
		taps[d] = linearTap{index: [2]int{min(max(s, 0), src-1), min(max(s+1, 0), src-1)},
			weight: [2]int32{w0, resizeCoefScale - w0}}
	}
	return taps
}

// ResizeLinear resizes an RGB image to w x h as cv2.resize(..., interpolation=cv2.INTER_LINEAR) does.
func ResizeLinear(img *RGB, w, h int) *RGB { return ResizeLinearInto(img, w, h, nil) }

// ResizeLinearInto is ResizeLinear writing into dst where it is large enough (nil: a new slice).
func ResizeLinearInto(img *RGB, w, h int, dst []uint8) *RGB {
	xs, ys := linearTaps(img.Width, w, true), linearTaps(img.Height, h, false)
	// horizontal pass on the source rows each output row needs; taps only move down, so two rows are cached
	type row struct {
		y   int
		sum []int32
	}
	cache := [2]row{{y: -1, sum: make([]int32, w*3)}, {y: -1, sum: make([]int32, w*3)}}
	hpass := func(sy int) []int32 {
		for _, r := range cache {
			if r.y == sy {
				return r.sum
			}
		}
		slot := &cache[0] // replace the upper (older) row
		if cache[1].y < cache[0].y {
			slot = &cache[1]
		}
		slot.y = sy
		src := img.Pix[sy*img.Width*3 : (sy+1)*img.Width*3]
		sum := slot.sum[:len(xs)*3]
		for dx, t := range xs { // the three channels unrolled, each source pixel's bounds checked once
			a, b := src[t.index[0]*3:t.index[0]*3+3], src[t.index[1]*3:t.index[1]*3+3]
			w0, w1 := t.weight[0], t.weight[1]
			o := sum[dx*3 : dx*3+3]
			o[0] = int32(a[0])*w0 + int32(b[0])*w1
			o[1] = int32(a[1])*w0 + int32(b[1])*w1
			o[2] = int32(a[2])*w0 + int32(b[2])*w1
		}
		return slot.sum
	}
	if cap(dst) < w*h*3 {
		dst = make([]uint8, w*h*3)
	}
	out := &RGB{Width: w, Height: h, Pix: dst[:w*h*3]}
	for dy, t := range ys {
		r0, r1 := hpass(t.index[0]), hpass(t.index[1])
		b0, b1 := t.weight[0], t.weight[1]
		dst := out.Pix[dy*w*3 : (dy+1)*w*3]
		r0, r1 = r0[:len(dst)], r1[:len(dst)]
		for i := range dst {
			v := (((b0 * (r0[i] >> 4)) >> 16) + ((b1 * (r1[i] >> 4)) >> 16) + 2) >> 2
			dst[i] = clampU8(v)
		}
	}
	return out
}

func clampU8(v int32) uint8 {
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// ResizeFloat resizes one float32 plane (w0 x h0) to w x h with OpenCV's floating-point bilinear weights, as
// cv2.resize does on float32 mask logits.
func ResizeFloat(src []float32, w0, h0, w, h int) []float32 {
	xs, ys := floatTaps(w0, w), floatTaps(h0, h)
	tmp := make([]float32, w*h0)
	for y := 0; y < h0; y++ {
		row := src[y*w0:]
		for dx, t := range xs {
			tmp[y*w+dx] = row[t.i0]*t.w0 + row[t.i1]*t.w1
		}
	}
	out := make([]float32, w*h)
	for dy, t := range ys {
		r0, r1 := tmp[t.i0*w:], tmp[t.i1*w:]
		for x := 0; x < w; x++ {
			out[dy*w+x] = r0[x]*t.w0 + r1[x]*t.w1
		}
	}
	return out
}

type floatTap struct {
	i0, i1 int
	w0, w1 float32
}

func floatTaps(src, dst int) []floatTap {
	taps := make([]floatTap, dst)
	for d := range taps {
		s, f := tapPosition(d, src, dst, true)
		taps[d] = floatTap{i0: s, i1: min(s+1, src-1), w0: 1 - f, w1: f}
	}
	return taps
}

// ResizePILBilinear resizes as PIL's Image.resize(..., BILINEAR) does (a triangle filter widened when shrinking,
// 22-bit fixed-point weights, horizontal pass first): what Ultralytics' classify transforms run.
func ResizePILBilinear(img *RGB, w, h int) *RGB {
	tmp := img
	if w != img.Width {
		tmp = pilPass(img, w, true)
	}
	if h != img.Height {
		tmp = pilPass(tmp, h, false)
	}
	return tmp
}

const pilPrecisionBits = 32 - 8 - 2

type pilKernel struct {
	start   int
	weights []int32
}

func pilKernels(in, out int) []pilKernel {
	scale := float64(in) / float64(out)
	filterScale := math.Max(scale, 1)
	support := 1.0 * filterScale
	ks := make([]pilKernel, out)
	for o := range ks {
		center := (float64(o) + 0.5) * scale
		lo := max(int(center-support+0.5), 0)
		hi := min(int(center+support+0.5), in)
		w := make([]float64, hi-lo)
		var sum float64
		for i := range w {
			x := math.Abs((float64(i+lo) - center + 0.5) / filterScale)
			if x < 1 {
				w[i] = 1 - x
			}
			sum += w[i]
		}
		fixed := make([]int32, len(w))
		for i := range w {
			v := w[i]
			if sum != 0 {
				v /= sum
			}
			if v < 0 {
				fixed[i] = int32(-0.5 + v*(1<<pilPrecisionBits))
			} else {
				fixed[i] = int32(0.5 + v*(1<<pilPrecisionBits))
			}
		}
		ks[o] = pilKernel{start: lo, weights: fixed}
	}
	return ks
}

func pilPass(img *RGB, size int, horizontal bool) *RGB {
	var out *RGB
	if horizontal {
		out = &RGB{Width: size, Height: img.Height, Pix: make([]uint8, size*img.Height*3)}
		ks := pilKernels(img.Width, size)
		for y := 0; y < img.Height; y++ {
			src := img.Pix[y*img.Width*3:]
			for x, k := range ks {
				for c := 0; c < 3; c++ {
					ss := int64(1) << (pilPrecisionBits - 1)
					for i, wt := range k.weights {
						ss += int64(src[(k.start+i)*3+c]) * int64(wt)
					}
					out.Pix[(y*size+x)*3+c] = clampU8(int32(ss >> pilPrecisionBits))
				}
			}
		}
		return out
	}
	out = &RGB{Width: img.Width, Height: size, Pix: make([]uint8, img.Width*size*3)}
	ks := pilKernels(img.Height, size)
	stride := img.Width * 3
	for y, k := range ks {
		for i := 0; i < stride; i++ {
			ss := int64(1) << (pilPrecisionBits - 1)
			for j, wt := range k.weights {
				ss += int64(img.Pix[(k.start+j)*stride+i]) * int64(wt)
			}
			out.Pix[y*stride+i] = clampU8(int32(ss >> pilPrecisionBits))
		}
	}
	return out
}
