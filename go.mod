module github.com/midline-rt/midline

go 1.26

require github.com/mattn/go-tflite v1.0.5

require github.com/mattn/go-pointer v0.0.1 // indirect
