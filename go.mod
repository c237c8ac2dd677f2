module github.com/midline-rt/midline

go 1.26

require (
	github.com/mattn/go-tflite v1.0.5
	github.com/suyashkumar/dicom v1.1.0
)

require (
	github.com/mattn/go-pointer v0.0.1 // indirect
	golang.org/x/exp v0.0.0-20240525044651-4c93da0ed11d // indirect
	golang.org/x/text v0.3.8 // indirect
)
