package dnnl

// Available reports whether bf16 convolutions can run here, and why or why not.
func Available() (bool, string) {
	return false, "oneDNN support is not built yet"
}
