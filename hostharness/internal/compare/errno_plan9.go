package compare

// errnoClasses is empty: plan9's socket errors are strings, not errnos.
var errnoClasses []struct {
	errno error
	class string
}
