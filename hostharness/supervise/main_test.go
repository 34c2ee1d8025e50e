package supervise_test

import (
	"os"
	"testing"

	"github.com/wasiserve/wasiserve/internal/enginetest"
)

func TestMain(m *testing.M) { os.Exit(enginetest.Main(m)) }
