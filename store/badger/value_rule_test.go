package badger

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// The store reads values only through itemValue and itemValueCopy, which
// tell a value that value-log GC moved during the read from a stored one
// (see errValueMoved): a direct Item.Value or Item.ValueCopy would take the
// empty value Badger yields then for the stored one.
func TestValuesAreReadThroughItemValue(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") || name == "value.go" {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			if sel, ok := call.Fun.(*ast.SelectorExpr); ok && (sel.Sel.Name == "Value" || sel.Sel.Name == "ValueCopy") {
				t.Errorf("%s: %s called directly; read values through itemValue or itemValueCopy", fset.Position(call.Pos()), sel.Sel.Name)
			}
			return true
		})
	}
}
