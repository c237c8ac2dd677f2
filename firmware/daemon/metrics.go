package daemon

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the daemon's Prometheus series (/metrics), on a registry of its own.
type metrics struct {
	reg       *prometheus.Registry
	instances prometheus.Counter
	jobs      *prometheus.CounterVec
	latency   prometheus.Histogram
}

func newMetrics(d *Daemon) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.instances = prometheus.NewCounter(prometheus.CounterOpts{Name: "midline_instances_received_total",
		Help: "DICOM instances acknowledged (stored durably)."})
	m.jobs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "midline_jobs_total",
		Help: "Jobs finished, by end state."}, []string{"state"})
	m.latency = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "midline_job_latency_seconds",
		Help:    "From a series' release to its result queued for every destination.",
		Buckets: []float64{1, 2, 5, 10, 20, 30, 60, 120, 300, 600}})
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	m.reg.MustRegister(m.instances, m.jobs, m.latency,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		gauge("midline_queue_depth", "Jobs waiting for the accelerator.", func() float64 { return float64(d.jobs.counts()[JobQueued]) }),
		gauge("midline_alarms", "Active alarms.", func() float64 { return float64(len(d.Alarms())) }),
		gauge("midline_state_dir_free_bytes", "Free space in the state folder.", func() float64 { return float64(d.diskFree()) }),
		gauge("midline_outbox_dicom_pending", "DICOM sends waiting.", func() float64 {
			pending, _ := d.dicomOutboxCounts()
			return float64(pending)
		}),
		gauge("midline_outbox_mqtt_depth", "MQTT messages waiting for the broker.", func() float64 {
			if d.mq == nil {
				return 0
			}
			return float64(d.mq.Stats().OutboxDepth)
		}),
		gauge("midline_accelerator_may_run", "1 unless the thermal policy pauses accelerator jobs.", func() float64 {
			if d.board.Thermal().MayRun() {
				return 1
			}
			return 0
		}),
	)
	return m
}
