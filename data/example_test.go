package data_test

import (
	"fmt"
	"math/rand"

	"github.com/diffinv/diffinv/data"
)

// Batches of a small in-memory dataset with a seeded shuffle.
func ExampleBatcher() {
	pix := make([]uint8, 5*1*2*2) // five black 2×2 gray images
	ds, err := data.NewDataset(pix, []int{0, 1, 2, 3, 4}, 5, 1, 2, 2)
	if err != nil {
		panic(err)
	}
	b, err := data.NewBatcher(ds, 2, rand.New(rand.NewSource(1)))
	if err != nil {
		panic(err)
	}
	fmt.Println("batches per epoch:", b.StepsPerEpoch())
	for range 3 {
		bt := b.Next()
		fmt.Println(bt.X.Shape(), "epoch", bt.Epoch, "first value", bt.X.Data().([]float32)[0])
	}
	// Output:
	// batches per epoch: 2
	// (2, 1, 2, 2) epoch 0 first value -1
	// (2, 1, 2, 2) epoch 0 first value -1
	// (2, 1, 2, 2) epoch 1 first value -1
}
