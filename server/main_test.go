package server

import (
	"testing"

	"github.com/regionmirror/regionmirror/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }
