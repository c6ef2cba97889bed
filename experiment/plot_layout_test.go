package experiment

import (
	"fmt"
	"testing"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// TestLayoutPanels: the metric panels and the legend tile the picture
// without overlapping, whatever the panels' tick labels take, for every
// number of metrics. Panels whose y labels differ in width (as PSNR, SSIM
// and consistency do) once pushed the last panel under the legend.
func TestLayoutPanels(t *testing.T) {
	ranges := [][2]float64{{15, 21}, {0.45, 0.85}, {0.0001, 1.3342}, {-1000, 12000}, {0, 1}, {1e-3, 2e-3}}
	for n := 1; n <= len(ranges); n++ {
		t.Run(fmt.Sprintf("%d metrics", n), func(t *testing.T) {
			var panels []*plot.Plot
			for i := 0; i < n; i++ {
				p := plot.New()
				p.Title.Text = fmt.Sprintf("metric %d", i)
				p.X.Label.Text = "measurement.noise.sigma"
				line, err := plotter.NewLine(plotter.XYs{{X: 0, Y: ranges[i][0]}, {X: 0.2, Y: ranges[i][1]}})
				if err != nil {
					t.Fatal(err)
				}
				p.Add(line)
				panels = append(panels, p)
			}
			legend := plot.New()
			legend.HideAxes()
			rows, cols := panelGrid(n)
			img := vgimg.New(3.2*vg.Inch*vg.Length(cols), 2.8*vg.Inch*vg.Length(rows))
			dc := draw.New(img)
			cs, lc := layoutPanels(panels, legend, dc)
			all := append(append([]draw.Canvas(nil), cs...), lc)
			for i, c := range all {
				if c.Min.X < dc.Min.X || c.Max.X > dc.Max.X || c.Min.Y < dc.Min.Y || c.Max.Y > dc.Max.Y {
					t.Errorf("tile %d %v lies outside the picture %v", i, c.Rectangle, dc.Rectangle)
				}
				if c.Max.X-c.Min.X < vg.Inch || c.Max.Y-c.Min.Y < vg.Inch {
					t.Errorf("tile %d %v is squeezed below an inch", i, c.Rectangle)
				}
				for j := 0; j < i; j++ {
					o := all[j]
					if c.Min.X < o.Max.X && o.Min.X < c.Max.X && c.Min.Y < o.Max.Y && o.Min.Y < c.Max.Y {
						t.Errorf("tile %d %v overlaps tile %d %v", i, c.Rectangle, j, o.Rectangle)
					}
				}
			}
		})
	}
}
