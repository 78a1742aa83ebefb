import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

# C++ kernel for element-wise addition; load_inline adds the torch/extension.h include and the
# Python bindings for the names listed in `functions`.
elementwise_add_cpp_source = """
torch::Tensor elementwise_add_cpu(torch::Tensor a, torch::Tensor b) {
    TORCH_CHECK(a.sizes() == b.sizes(), "a and b must have the same shape");
    auto a_contig = a.contiguous();
    auto b_contig = b.contiguous();
    auto out = torch::empty_like(a_contig);
    const float* pa = a_contig.data_ptr<float>();
    const float* pb = b_contig.data_ptr<float>();
    float* po = out.data_ptr<float>();
    const int64_t size = a_contig.numel();
    #pragma omp parallel for simd
    for (int64_t i = 0; i < size; ++i) {
        po[i] = pa[i] + pb[i];
    }
    return out;
}
"""

elementwise_add = load_inline(
    name="elementwise_add_cpu",
    cpp_sources=elementwise_add_cpp_source,
    functions=["elementwise_add_cpu"],
    extra_cflags=["-O3", "-fopenmp"],
    extra_ldflags=["-fopenmp"],
    verbose=False,
)


class ModelNew(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.elementwise_add = elementwise_add

    def forward(self, a, b):
        return self.elementwise_add.elementwise_add_cpu(a, b)
