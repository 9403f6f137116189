package api

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestParametersOutsideTheirRangeAreBadParameter(t *testing.T) {
	for _, q := range []string{"conf=2", "iou=-0.1", "max_det=0", "max_det=1001", "top_k=0", "conf=abc", "conf=NaN"} {
		values, _ := url.ParseQuery(q)
		if _, err := ParseOptions(values); err == nil || err.Code != "bad_parameter" || !strings.Contains(err.Message, strings.Split(q, "=")[0]) {
			t.Errorf("%s: err = %v", q, err)
		}
	}
	values, _ := url.ParseQuery("conf=0.4&iou=0.5&max_det=10&top_k=3")
	o, err := ParseOptions(values)
	if err != nil || o.Conf != 0.4 || o.IoU != 0.5 || o.MaxDet != 10 || o.TopK != 3 {
		t.Fatalf("ParseOptions = %+v, %v", o, err)
	}
}

func TestRawImageAndMultipartBodiesGiveTheImageBytes(t *testing.T) {
	if data, err := ReadImage("image/png", strings.NewReader("PNGDATA")); err != nil || string(data) != "PNGDATA" {
		t.Fatalf("raw: %q, %v", data, err)
	}
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	_ = w.WriteField("note", "ignored")
	part, _ := w.CreateFormFile("image", "a.jpg")
	_, _ = part.Write([]byte("JPEGDATA"))
	_ = w.Close()
	if data, err := ReadImage(w.FormDataContentType(), &body); err != nil || string(data) != "JPEGDATA" {
		t.Fatalf("multipart: %q, %v", data, err)
	}
}

func TestMultipartFieldsWhoseNamesGoWouldRefuseAreSkipped(t *testing.T) {
	// a form feed in a quoted field name is RFC 5322 obs-qtext; mime/multipart refuses the whole form for it
	body := "--b\r\nContent-Disposition: form-data; name=\"odd\x0cname\"\r\n\r\n{}\r\n" +
		"--b\r\n\r\nno header at all\r\n" +
		"--b\r\nContent-Disposition: form-data; name=\"image\"; filename=\"image\"\r\n\r\nJPEG\r\n--b--\r\n"
	if data, err := ReadImage("multipart/form-data; boundary=b", strings.NewReader(body)); err != nil || string(data) != "JPEG" {
		t.Fatalf("got %q, %v", data, err)
	}
}

func TestMultipartWithoutItsCloseDelimiterIsMalformed(t *testing.T) {
	body := "--b\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\nJPEG, and then the body is cut"
	if _, err := ReadImage("multipart/form-data; boundary=b", strings.NewReader(body)); err == nil || err.Code != "bad_image" {
		t.Fatalf("err = %v, want bad_image", err)
	}
}

func TestMultipartFieldAgreesWithTheStandardReaderOnFormsItWrites(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 300; i++ {
		var body bytes.Buffer
		w := multipart.NewWriter(&body)
		want := []byte(nil)
		for f := 0; f < rng.IntN(5); f++ {
			content := make([]byte, rng.IntN(64))
			for j := range content {
				content[j] = byte(rng.IntN(256))
			}
			name := []string{"note", "image", "x y", "ünïcode", ""}[rng.IntN(5)]
			part, _ := w.CreateFormFile(name, "f.bin")
			_, _ = part.Write(content)
			if name == "image" && want == nil {
				want = content
			}
		}
		_ = w.Close()
		got, err := multipartField(body.Bytes(), w.Boundary(), "image")
		if want == nil {
			if !errors.Is(err, errNoField) {
				t.Fatalf("form %d without an image: %v", i, err)
			}
		} else if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("form %d: got %q, %v; want %q", i, got, err, want)
		}
	}
}

func TestUnsupportedBodiesGetTheirDocumentedCode(t *testing.T) {
	cases := map[string]string{"": "unsupported_media_type", "text/plain": "unsupported_media_type",
		"application/json": "unsupported_media_type", "multipart/form-data": "unsupported_media_type"}
	for ct, code := range cases {
		if _, err := ReadImage(ct, strings.NewReader("x")); err == nil || err.Code != code {
			t.Errorf("%q: err = %v, want %s", ct, err, code)
		}
	}
	if _, err := ReadImage("image/jpeg", strings.NewReader("")); err == nil || err.Code != "bad_image" {
		t.Errorf("empty body: %v", err)
	}
}

func TestOversizedBodyIsTooLarge(t *testing.T) {
	rec := http.MaxBytesReader(nil, noopCloser{strings.NewReader(strings.Repeat("x", 100))}, 10)
	if _, err := ReadImage("image/jpeg", rec); err == nil || err.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("err = %v, want 413", err)
	}
}

type noopCloser struct{ *strings.Reader }

func (noopCloser) Close() error { return nil }

func FuzzParseRequest(f *testing.F) {
	f.Add("image/jpeg", "conf=0.5", []byte("\xff\xd8"))
	f.Add("multipart/form-data; boundary=xyz", "max_det=3&top_k=2", []byte("--xyz\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\nabc\r\n--xyz--\r\n"))
	f.Add("text/plain", "iou=2", []byte("hello"))
	f.Fuzz(func(t *testing.T, contentType, query string, body []byte) {
		values, _ := url.ParseQuery(query)
		if o, err := ParseOptions(values); err == nil {
			if o.Conf < 0 || o.Conf > 1 || o.IoU < 0 || o.IoU > 1 || o.MaxDet < 1 || o.TopK < 1 {
				t.Fatalf("accepted out-of-range options %+v from %q", o, query)
			}
		} else if err.Status != http.StatusBadRequest {
			t.Fatalf("parameter error with status %d", err.Status)
		}
		data, err := ReadImage(contentType, bytes.NewReader(body))
		if err != nil {
			switch err.Status {
			case http.StatusBadRequest, http.StatusUnsupportedMediaType, http.StatusRequestEntityTooLarge:
			default:
				t.Fatalf("status %d for a bad body", err.Status)
			}
			return
		}
		if len(data) == 0 {
			t.Fatal("an empty image was accepted")
		}
	})
}
