package strictjson

import (
	"errors"
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	type doc struct {
		A int    `json:"a"`
		B string `json:"b"`
	}
	var d doc
	if err := Decode([]byte(" {\"a\": 1, \"b\": \"x\"}\n\t"), &d); err != nil || d != (doc{1, "x"}) {
		t.Fatalf("%+v, %v", d, err)
	}
	for raw, want := range map[string]string{
		`{"a": 1}}`:         ErrTrailing.Error(),
		`{"a": 1}]`:         ErrTrailing.Error(),
		`{"a": 1} {"a": 2}`: ErrTrailing.Error(),
		`{"a": 1} x`:        ErrTrailing.Error(),
		`{"a": 1, "c": 2}`:  `unknown field "c"`,
		`{"a": "1"}`:        "cannot unmarshal",
		``:                  "EOF",
		`[]`:                "cannot unmarshal array",
	} {
		err := Decode([]byte(raw), &doc{})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", raw, err, want)
		}
		if want == ErrTrailing.Error() && !errors.Is(err, ErrTrailing) {
			t.Errorf("%q: %v is not ErrTrailing", raw, err)
		}
	}
}
