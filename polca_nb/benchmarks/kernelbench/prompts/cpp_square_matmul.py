# Hand-written C++/OpenMP kernel for the CPU-scaled square matmul task (KernelBench problem 1).
# A correct but unblocked i-k-j loop: a sanity check for the evaluator, not a fast kernel.
import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

matmul_cpp_source = """
torch::Tensor square_matmul(torch::Tensor A, torch::Tensor B) {
    TORCH_CHECK(A.dim() == 2 && B.dim() == 2 && A.size(1) == B.size(0), "shape mismatch");
    auto a = A.contiguous();
    auto b = B.contiguous();
    const int64_t M = a.size(0), K = a.size(1), N = b.size(1);
    auto c = torch::zeros({M, N}, a.options());
    const float* pa = a.data_ptr<float>();
    const float* pb = b.data_ptr<float>();
    float* pc = c.data_ptr<float>();
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < M; ++i) {
        float* row = pc + i * N;
        for (int64_t k = 0; k < K; ++k) {
            const float aik = pa[i * K + k];
            const float* brow = pb + k * N;
            #pragma omp simd
            for (int64_t j = 0; j < N; ++j) {
                row[j] += aik * brow[j];
            }
        }
    }
    return c;
}
"""

square_matmul = load_inline(
    name="polca_square_matmul",
    cpp_sources=matmul_cpp_source,
    functions=["square_matmul"],
    extra_cflags=["-O3", "-fopenmp"],
    extra_ldflags=["-fopenmp"],
    verbose=False,
)


class ModelNew(nn.Module):
    def __init__(self) -> None:
        super().__init__()

    def forward(self, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        return square_matmul.square_matmul(A, B)
