// Package accel runs full-integer int8 segmentation models on an inference engine: TensorFlow
// Lite's builtin CPU kernels, or the Edge TPU through TFLite's external delegate.
//
// The TFLite C library is reached through one thin cgo file (tflite.go) behind the small
// runtime and interpreter interfaces, so that everything else here is plain Go and is tested
// with a fake that checks the real arguments.
package accel
