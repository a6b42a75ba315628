// The JSON mapping against real Go: messages of protoc-gen-go types
// (pb/kitchenpb, from tests/codec/proto/kitchen.proto) are encoded by Go
// Micro v4's JSON codec (encoding/json), by jsonpb and by protojson (Go
// Micro v5), decoded by cmicro (cmicro-pbjson-tool json2bin) and must come
// back equal; and cmicro's JSON of a Go-made protobuf message must decode
// to an equal message through Go Micro v4's JSON codec (jsonpb) and
// through protojson.
package interop

import (
	"bytes"
	"math"
	"os/exec"
	"path/filepath"
	"testing"

	"cmicro/interop/pb/commonpb"
	"cmicro/interop/pb/kitchenpb"
	"cmicro/interop/pb/legacypb"

	"github.com/golang/protobuf/jsonpb"
	"go-micro.dev/v4/codec"
	mjson "go-micro.dev/v4/codec/json"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

type bufRWC struct{ *bytes.Buffer }

func (bufRWC) Close() error { return nil }

// goMicroJSON encodes m as Go Micro v4's JSON codec writes a body.
func goMicroJSON(t *testing.T, m proto.Message) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := mjson.NewCodec(bufRWC{&b}).Write(&codec.Message{}, m); err != nil {
		t.Fatalf("go-micro json codec Write: %v", err)
	}
	return b.Bytes()
}

// goMicroJSONDecode decodes a body as Go Micro v4's JSON codec does.
func goMicroJSONDecode(body []byte, m proto.Message) error {
	return mjson.NewCodec(bufRWC{bytes.NewBuffer(body)}).ReadBody(m)
}

// inner builds a nested message.
func inner(name string, id int32) *kitchenpb.Kitchen_Inner {
	return &kitchenpb.Kitchen_Inner{Name: name, Id: id}
}

// v4Safe is a message every Go encoder handles: encoding/json (Go Micro
// v4's encoder) fails on NaN, on map[bool] keys, and writes
// Struct/Value/ListValue in a shape nobody can read back, so those stay
// out of it.
func v4Safe() *kitchenpb.Kitchen {
	return &kitchenpb.Kitchen{
		FDouble: -1.25e-7, FFloat: 3.14159, FInt32: math.MinInt32, FInt64: math.MaxInt64,
		FUint32: math.MaxUint32, FUint64: math.MaxUint64, FSint32: -42, FSint64: math.MinInt64,
		FFixed32: 7, FFixed64: 9007199254740993, FSfixed32: -7, FSfixed64: -9007199254740993,
		FBool: true, FString: "h\u00e9llo <&> \"q\" \\ \n\t\x01 \u2028 \U0001F600",
		FBytes: []byte{0, 1, 2, 0xfe, 0xff, '<', '>'}, FEnum: kitchenpb.Color_GREEN,
		FMsg:    &kitchenpb.Kitchen_Inner{Name: "inner", Id: 5, Child: inner("child", 0), Tags: []string{"a", ""}},
		FPoint:  &commonpb.Point{X: -1, Y: 2},
		RInt32:  []int32{1, -2, 0},
		RInt64:  []int64{math.MinInt64, 0, 1234567890123},
		RString: []string{"x", "", "z z"}, RBytes: [][]byte{{0, 1, 2}, {}},
		REnum: []kitchenpb.Color{kitchenpb.Color_RED, kitchenpb.Color_COLOR_UNSPECIFIED},
		RMsg:  []*kitchenpb.Kitchen_Inner{inner("", -9), inner("child", 0)},
		RDouble: []float64{0.1, 1e21, 5e-324}, RBool: []bool{true, false},
		MStrI64:   map[string]int64{"zeta": -5, "alpha": math.MaxInt64},
		MI32Str:   map[int32]string{10: "ten", -2: "minus two"},
		MStrMsg:   map[string]*kitchenpb.Kitchen_Inner{"k": inner("in map", 0)},
		MU64Enum:  map[uint64]kitchenpb.Color{math.MaxUint64: kitchenpb.Color_RED},
		Choice:    &kitchenpb.Kitchen_OMsg{OMsg: inner("oneof", 0)},
		TTime:     &timestamppb.Timestamp{Seconds: 1700000000, Nanos: 123000000},
		TDur:      &durationpb.Duration{Seconds: -3, Nanos: -500000000},
		TI64:      wrapperspb.Int64(math.MinInt64),
		TStr:      wrapperspb.String("wrapped"),
		TBool:     wrapperspb.Bool(true),
		TMask:     &fieldmaskpb.FieldMask{Paths: []string{"f_int32", "f_msg.name"}},
		TEmpty:    &emptypb.Empty{},
		SnakeCaseName: "snake",
	}
}

// full adds what only jsonpb/protojson/protobuf can carry.
func full() *kitchenpb.Kitchen {
	k := v4Safe()
	k.MBool = map[bool]bool{true: true, false: true}
	st, _ := structpb.NewStruct(map[string]interface{}{"str": "s", "num": 2.5, "nested": map[string]interface{}{"l": []interface{}{1.0, "x", nil, true}}})
	k.TStruct = st
	k.TValue = structpb.NewBoolValue(true)
	lv, _ := structpb.NewList([]interface{}{nil, "y", 3.0})
	k.TList = lv
	return k
}

func fixtures() map[string]*kitchenpb.Kitchen {
	num := v4Safe()
	num.Choice = &kitchenpb.Kitchen_ONum{ONum: math.MinInt64}
	text := v4Safe()
	text.Choice = &kitchenpb.Kitchen_OText{OText: "t"}
	return map[string]*kitchenpb.Kitchen{
		"v4safe": v4Safe(), "oneof_num": num, "oneof_text": text,
		"empty": {}, "full": full(),
	}
}

func pbTool(t *testing.T) string {
	t.Helper()
	need(t)
	if goOnly {
		t.Skip("INTEROP_GO_ONLY: no C tool")
	}
	return filepath.Join(binDir, "cmicro-pbjson-tool")
}

func runTool(t *testing.T, tool, mode, typ string, in []byte) []byte {
	t.Helper()
	cmd := exec.Command(tool, mode, typ)
	cmd.Stdin = bytes.NewReader(in)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("cmicro-pbjson-tool %s %s: %v: %s\ninput: %s", mode, typ, err, errb.String(), in)
	}
	return out.Bytes()
}

func expectEqual(t *testing.T, what string, got, want proto.Message) {
	t.Helper()
	if !proto.Equal(got, want) {
		t.Errorf("%s: not equal\n got  %v\n want %v", what, got, want)
	}
}

// Go encodes JSON; cmicro decodes it.
func TestPbjsonGoEncodesCDecodes(t *testing.T) {
	tool := pbTool(t)
	for name, k := range fixtures() {
		encs := map[string][]byte{}
		if name != "full" {
			encs["go-micro v4 json codec (encoding/json)"] = goMicroJSON(t, k)
		}
		for _, orig := range []bool{true, false} {
			s, err := (&jsonpb.Marshaler{OrigName: orig}).MarshalToString(k)
			if err != nil {
				t.Fatalf("jsonpb: %v", err)
			}
			encs["jsonpb orig="+map[bool]string{true: "true", false: "false"}[orig]] = []byte(s)
		}
		pj, err := protojson.Marshal(k)
		if err != nil {
			t.Fatalf("protojson: %v", err)
		}
		encs["protojson (go-micro v5)"] = pj
		for enc, js := range encs {
			bin := runTool(t, tool, "json2bin", "kitchen", js)
			got := &kitchenpb.Kitchen{}
			if err := proto.Unmarshal(bin, got); err != nil {
				t.Fatalf("%s/%s: unmarshal cmicro's protobuf: %v", name, enc, err)
			}
			expectEqual(t, name+" via "+enc, got, k)
		}
	}
}

// cmicro encodes JSON from Go's protobuf; Go decodes it.
func TestPbjsonCEncodesGoDecodes(t *testing.T) {
	tool := pbTool(t)
	for name, k := range fixtures() {
		bin, err := proto.Marshal(k)
		if err != nil {
			t.Fatal(err)
		}
		js := runTool(t, tool, "bin2json", "kitchen", bin)
		got := &kitchenpb.Kitchen{}
		if err := goMicroJSONDecode(js, got); err != nil {
			t.Errorf("%s: go-micro v4 json codec rejects cmicro's JSON: %v\n%s", name, err, js)
		} else {
			expectEqual(t, name+" (cmicro v4 JSON -> go-micro json codec)", got, k)
		}
		pj := runTool(t, tool, "bin2protojson", "kitchen", bin)
		got = &kitchenpb.Kitchen{}
		if err := protojson.Unmarshal(pj, got); err != nil {
			t.Errorf("%s: protojson rejects cmicro's protojson: %v\n%s", name, err, pj)
		} else {
			expectEqual(t, name+" (cmicro protojson -> protojson)", got, k)
		}
		back := runTool(t, tool, "bin2bin", "kitchen", bin)
		got = &kitchenpb.Kitchen{}
		if err := proto.Unmarshal(back, got); err != nil {
			t.Fatal(err)
		}
		expectEqual(t, name+" (protobuf through cmicro)", got, k)
	}
}

// proto2: presence and defaults survive both ways.
func TestPbjsonLegacyProto2(t *testing.T) {
	tool := pbTool(t)
	m := &legacypb.Old{Id: proto.Int32(0), Big: proto.Int64(0), Packed: []int32{1, 300, -1}}
	bin, _ := proto.Marshal(m)
	js := runTool(t, tool, "bin2json", "legacy", bin)
	got := &legacypb.Old{}
	if err := goMicroJSONDecode(js, got); err != nil {
		t.Fatalf("decode %s: %v", js, err)
	}
	expectEqual(t, "proto2 C->Go", got, m)
	back := runTool(t, tool, "json2bin", "legacy", goMicroJSON(t, m))
	got = &legacypb.Old{}
	if err := proto.Unmarshal(back, got); err != nil {
		t.Fatal(err)
	}
	expectEqual(t, "proto2 Go->C", got, m)
}
