/* A stand-in for libedgetpu.so.1 that behaves like the real library on a box without an Edge TPU
 * device: it loads, exports the external-delegate plugin entry points TFLite looks for, and fails
 * to create a delegate. Built by accel's tests (TestEdgeTPUStubThatFailsIsAClearError). */
#include <stddef.h>

typedef struct TfLiteDelegate TfLiteDelegate;

TfLiteDelegate *tflite_plugin_create_delegate(char **keys, char **values, size_t n,
                                              void (*report_error)(const char *)) {
	(void)keys;
	(void)values;
	(void)n;
	if (report_error != NULL) {
		report_error("stub libedgetpu: no Edge TPU device found");
	}
	return NULL;
}

void tflite_plugin_destroy_delegate(TfLiteDelegate *d) { (void)d; }
