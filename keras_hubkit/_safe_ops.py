"""The allowlist: op types that compute on tensors only (reviewed data).

`hk.scan` accepts a SavedModel only if every op in every function it can
run is listed here, or is one of the few ops in `STRUCTURAL` that the scan
proves harmless from the model's structure (the saver on its checkpoint
prefix, a table reading one of the model's own assets, ...). Everything
else -- an op TensorFlow adds next release, a custom op -- is refused until
someone reviews it and adds it to a family below, with the reason.

Review rules for adding an op:

- It reads its inputs from tensors and writes its outputs to tensors: no
  file, directory, socket, device outside the process, Python callback or
  log sink, whatever its inputs and attrs say.
- A string input or attr that names a file, pattern, URL or descriptor
  source disqualifies it (`tests/test_allowlist.py` checks this against
  the installed TensorFlow's op registry; an op whose OpDef only looks like
  that, e.g. a regular-expression `pattern`, is listed in
  `NOT_FILE_NAMES` with the reason).
- An op that runs other functions (control flow, datasets) is fine: the
  scan follows every function-valued attr and checks those functions too.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Family:
    """Op types that are safe for the same reason."""

    reason: str
    ops: tuple
    package: str = ""  # pip package that registers them ("" = TensorFlow)
    module: str = ""  # module to import to register them


# fmt: off
FAMILIES = {
    "graph_plumbing": Family(
        reason=(
            "Constants, placeholders, identities, no-ops and assertions: "
            "they pass tensors through or fail a step; an Assert only logs "
            "its message."
        ),
        ops=(
            "Assert", "CheckNumerics", "CheckNumericsV2", "Const",
            "ControlTrigger", "DeepCopy", "Empty", "EnsureShape",
            "GuaranteeConst", "Identity", "IdentityN", "NoOp",
            "Placeholder", "PlaceholderV2", "PlaceholderWithDefault",
            "PreventGradient", "StopGradient",
        ),
    ),
    "control_flow": Family(
        reason=(
            "Branches, loops and function calls. They run other functions "
            "of the model, named in function-valued attrs; the scan follows "
            "those attrs and checks every function they name."
        ),
        ops=(
            "Case", "Enter", "Exit", "For", "If", "LoopCond", "Merge",
            "NextIteration", "PartitionedCall", "RefEnter", "RefExit",
            "RefIdentity", "RefMerge", "RefNextIteration", "RefSelect",
            "RefSwitch", "StatefulPartitionedCall", "StatelessCase",
            "StatelessIf", "StatelessWhile", "Switch", "SymbolicGradient",
            "While",
        ),
    ),
    "math_array": Family(
        reason=(
            "Element-wise math, reductions, linear algebra, FFT, special "
            "functions, and shape/slice/gather/concat/pad/transpose of "
            "tensors in memory."
        ),
        ops=(
            "Abs", "AccumulateNV2", "Acos", "Acosh", "Add", "AddN", "AddV2",
            "All", "Angle", "Any", "ApproximateEqual", "ArgMax", "ArgMin",
            "Asin", "Asinh", "Atan", "Atan2", "Atanh",
            "BandedTriangularSolve", "BatchCholesky", "BatchCholeskyGrad",
            "BatchFFT", "BatchFFT2D", "BatchFFT3D", "BatchIFFT",
            "BatchIFFT2D", "BatchIFFT3D", "BatchMatMul", "BatchMatMulV2",
            "BatchMatMulV3", "BatchMatrixBandPart",
            "BatchMatrixDeterminant", "BatchMatrixDiag",
            "BatchMatrixDiagPart", "BatchMatrixInverse",
            "BatchMatrixSetDiag", "BatchMatrixSolve", "BatchMatrixSolveLs",
            "BatchMatrixTriangularSolve", "BatchSelfAdjointEig",
            "BatchSelfAdjointEigV2", "BatchSvd", "BesselI0", "BesselI0e",
            "BesselI1", "BesselI1e", "BesselJ0", "BesselJ1", "BesselK0",
            "BesselK0e", "BesselK1", "BesselK1e", "BesselY0", "BesselY1",
            "Betainc", "Bitcast", "BitwiseAnd", "BitwiseOr", "BitwiseXor",
            "BroadcastArgs", "BroadcastGradientArgs", "BroadcastTo",
            "Bucketize", "Cast", "Ceil", "Cholesky", "CholeskyGrad",
            "ClipByValue", "Complex", "ComplexAbs", "Concat",
            "ConcatOffset", "ConcatV2", "Conj", "ConjugateTranspose", "Cos",
            "Cosh", "Cross", "Cumprod", "Cumsum", "CumulativeLogsumexp",
            "Dawsn", "Diag", "DiagPart", "Digamma", "Div", "DivNoNan",
            "DynamicPartition", "DynamicStitch", "Eig", "Einsum", "Equal",
            "Erf", "Erfc", "Erfinv", "EuclideanNorm", "Exp", "ExpandDims",
            "Expint", "Expm1", "FFT", "FFT2D", "FFT3D", "FFTND", "Fact",
            "Fill", "Floor", "FloorDiv", "FloorMod", "FresnelCos",
            "FresnelSin", "Gather", "GatherNd", "GatherV2", "Greater",
            "GreaterEqual", "HistogramFixedWidth", "IFFT", "IFFT2D",
            "IFFT3D", "IFFTND", "IRFFT", "IRFFT2D", "IRFFT3D", "IRFFTND",
            "Igamma", "IgammaGradA", "Igammac", "Imag", "InplaceAdd",
            "InplaceSub", "InplaceUpdate", "Inv", "InvGrad", "Invert",
            "InvertPermutation", "IsFinite", "IsInf", "IsNan",
            "KthOrderStatistic", "LeftShift", "Less", "LessEqual", "Lgamma",
            "LinSpace", "ListDiff", "Log", "Log1p", "LogMatrixDeterminant",
            "LogicalAnd", "LogicalNot", "LogicalOr", "LowerBound", "Lu",
            "MatMul", "MatrixBandPart", "MatrixDeterminant", "MatrixDiag",
            "MatrixDiagPart", "MatrixDiagPartV2", "MatrixDiagPartV3",
            "MatrixDiagV2", "MatrixDiagV3", "MatrixExponential",
            "MatrixInverse", "MatrixLogarithm", "MatrixSetDiag",
            "MatrixSetDiagV2", "MatrixSetDiagV3", "MatrixSolve",
            "MatrixSolveLs", "MatrixSquareRoot", "MatrixTriangularSolve",
            "Max", "Maximum", "Mean", "Min", "Minimum", "MirrorPad",
            "MirrorPadGrad", "Mod", "Mul", "MulNoNan", "Ndtri", "Neg",
            "NextAfter", "NotEqual", "OneHot", "OnesLike", "Pack", "Pad",
            "PadV2", "ParallelConcat", "ParallelDynamicStitch", "Polygamma",
            "PopulationCount", "Pow", "Prod", "Qr", "RFFT", "RFFT2D",
            "RFFT3D", "RFFTND", "Range", "Rank", "Real", "RealDiv",
            "Reciprocal", "ReciprocalGrad", "Reshape", "Reverse",
            "ReverseSequence", "ReverseV2", "RightShift", "Rint", "Roll",
            "Round", "Rsqrt", "RsqrtGrad", "SegmentMax", "SegmentMaxV2",
            "SegmentMean", "SegmentMin", "SegmentMinV2", "SegmentProd",
            "SegmentProdV2", "SegmentSum", "SegmentSumV2", "Select",
            "SelectV2", "SelfAdjointEig", "SelfAdjointEigV2", "Shape",
            "ShapeN", "Sign", "Sin", "Sinh", "Size", "Slice", "Spence",
            "Split", "SplitV", "Sqrt", "SqrtGrad", "Square",
            "SquaredDifference", "Squeeze", "StochasticCastToInt",
            "StridedSlice", "StridedSliceGrad", "Sub", "Sum", "Svd", "Tan",
            "TensorScatterAdd", "TensorScatterMax", "TensorScatterMin",
            "TensorScatterSub", "TensorScatterUpdate",
            "TensorStridedSliceUpdate", "Tile", "TileGrad", "ToBool",
            "Transpose", "TridiagonalMatMul", "TridiagonalSolve",
            "TruncateDiv", "TruncateMod", "UniformDequantize", "Unique",
            "UniqueV2", "UniqueWithCounts", "UniqueWithCountsV2", "Unpack",
            "UnravelIndex", "UnsortedSegmentMax", "UnsortedSegmentMin",
            "UnsortedSegmentProd", "UnsortedSegmentSum", "UpperBound",
            "Where", "Xdivy", "Xlog1py", "Xlogy", "ZerosLike", "Zeta",
        ),
    ),
    "nn": Family(
        reason=(
            "Convolution, pooling, normalization, activations, losses, "
            "recurrent cells (including the cuDNN kernels Keras picks on "
            "GPUs) and their gradients: arithmetic on tensors."
        ),
        ops=(
            "ApproxTopK", "AvgPool", "AvgPool3D", "AvgPool3DGrad",
            "AvgPoolGrad", "BatchNormWithGlobalNormalization",
            "BatchNormWithGlobalNormalizationGrad", "BatchToSpace",
            "BatchToSpaceND", "BiasAdd", "BiasAddGrad", "BiasAddV1",
            "BlockLSTM", "BlockLSTMGrad", "BlockLSTMGradV2", "BlockLSTMV2",
            "CTCBeamSearchDecoder", "CTCGreedyDecoder", "CTCLoss",
            "CTCLossV2", "Conv", "Conv2D", "Conv2DBackpropFilter",
            "Conv2DBackpropFilterV2", "Conv2DBackpropInput",
            "Conv2DBackpropInputV2", "Conv3D", "Conv3DBackpropFilter",
            "Conv3DBackpropFilterV2", "Conv3DBackpropInput",
            "Conv3DBackpropInputV2", "CudnnRNN", "CudnnRNNBackprop",
            "CudnnRNNBackpropV2", "CudnnRNNBackpropV3",
            "CudnnRNNCanonicalToParams", "CudnnRNNCanonicalToParamsV2",
            "CudnnRNNParamsSize", "CudnnRNNParamsToCanonical",
            "CudnnRNNParamsToCanonicalV2", "CudnnRNNV2", "CudnnRNNV3",
            "DataFormatDimMap", "DataFormatVecPermute", "DepthToSpace",
            "DepthwiseConv2dNative", "DepthwiseConv2dNativeBackpropFilter",
            "DepthwiseConv2dNativeBackpropInput", "Dilation2D",
            "Dilation2DBackpropFilter", "Dilation2DBackpropInput", "Elu",
            "EluGrad", "FractionalAvgPool", "FractionalAvgPoolGrad",
            "FractionalMaxPool", "FractionalMaxPoolGrad", "FusedBatchNorm",
            "FusedBatchNormGrad", "FusedBatchNormGradV2",
            "FusedBatchNormGradV3", "FusedBatchNormV2", "FusedBatchNormV3",
            "FusedPadConv2D", "FusedResizeAndPadConv2D", "GRUBlockCell",
            "GRUBlockCellGrad", "InTopK", "InTopKV2", "IsotonicRegression",
            "KMC2ChainInitialization", "KmeansPlusPlusInitialization",
            "L2Loss", "LRN", "LRNGrad", "LSTMBlockCell",
            "LSTMBlockCellGrad", "LeakyRelu", "LeakyReluGrad", "LogSoftmax",
            "MaxPool", "MaxPool3D", "MaxPool3DGrad", "MaxPool3DGradGrad",
            "MaxPoolGrad", "MaxPoolGradGrad", "MaxPoolGradGradV2",
            "MaxPoolGradGradWithArgmax", "MaxPoolGradV2",
            "MaxPoolGradWithArgmax", "MaxPoolV2", "MaxPoolWithArgmax",
            "NearestNeighbors", "NthElement", "Relu", "Relu6", "Relu6Grad",
            "ReluGrad", "Selu", "SeluGrad", "Sigmoid", "SigmoidGrad",
            "Softmax", "SoftmaxCrossEntropyWithLogits", "Softplus",
            "SoftplusGrad", "Softsign", "SoftsignGrad", "SpaceToBatch",
            "SpaceToBatchND", "SpaceToDepth", "Tanh", "TanhGrad", "TopK",
            "TopKUnique", "TopKV2", "TopKWithUnique",
        ),
    ),
    "random": Family(
        reason=(
            "Random numbers (seeded, stateless or from an RNG state "
            "variable) and candidate samplers whose distribution is given "
            "as tensors or attrs (FixedUnigramCandidateSampler, which reads "
            "a vocabulary file, is not listed)."
        ),
        ops=(
            "AllCandidateSampler", "AnonymousRandomSeedGenerator",
            "AnonymousSeedGenerator", "ComputeAccidentalHits",
            "DeleteRandomSeedGenerator", "DeleteSeedGenerator",
            "DummySeedGenerator", "LearnedUnigramCandidateSampler",
            "LogUniformCandidateSampler", "Multinomial",
            "ParameterizedTruncatedNormal", "RandomCrop", "RandomGamma",
            "RandomGammaGrad", "RandomIndexShuffle", "RandomPoisson",
            "RandomPoissonV2", "RandomShuffle", "RandomStandardNormal",
            "RandomUniform", "RandomUniformInt", "RngReadAndSkip",
            "RngSkip", "SobolSample", "StatefulRandomBinomial",
            "StatefulStandardNormal", "StatefulStandardNormalV2",
            "StatefulTruncatedNormal", "StatefulUniform",
            "StatefulUniformFullInt", "StatefulUniformInt",
            "StatelessMultinomial", "StatelessParameterizedTruncatedNormal",
            "StatelessRandomBinomial", "StatelessRandomGammaV2",
            "StatelessRandomGammaV3", "StatelessRandomGetAlg",
            "StatelessRandomGetKeyCounter",
            "StatelessRandomGetKeyCounterAlg", "StatelessRandomNormal",
            "StatelessRandomNormalV2", "StatelessRandomPoisson",
            "StatelessRandomUniform", "StatelessRandomUniformFullInt",
            "StatelessRandomUniformFullIntV2", "StatelessRandomUniformInt",
            "StatelessRandomUniformIntV2", "StatelessRandomUniformV2",
            "StatelessSampleDistortedBoundingBox", "StatelessShuffle",
            "StatelessTruncatedNormal", "StatelessTruncatedNormalV2",
            "ThreadUnsafeUnigramCandidateSampler", "TruncatedNormal",
            "UniformCandidateSampler",
        ),
    ),
    "variables": Family(
        reason=(
            "Create, read, assign and update variables (including optimizer "
            "update steps and mutexes): they change values inside the "
            "process only."
        ),
        ops=(
            "ApplyAdaMax", "ApplyAdadelta", "ApplyAdagrad",
            "ApplyAdagradDA", "ApplyAdagradV2", "ApplyAdam", "ApplyAddSign",
            "ApplyCenteredRMSProp", "ApplyFtrl", "ApplyFtrlV2",
            "ApplyGradientDescent", "ApplyMomentum", "ApplyPowerSign",
            "ApplyProximalAdagrad", "ApplyProximalGradientDescent",
            "ApplyRMSProp", "Assign", "AssignAdd", "AssignAddVariableOp",
            "AssignSub", "AssignSubVariableOp", "AssignVariableOp",
            "ConsumeMutexLock", "CountUpTo", "DestroyResourceOp",
            "DestroyTemporaryVariable", "DisableCopyOnRead",
            "IsVariableInitialized", "MutexLock", "MutexV2",
            "ReadVariableOp", "ResourceApplyAdaMax",
            "ResourceApplyAdadelta", "ResourceApplyAdagrad",
            "ResourceApplyAdagradDA", "ResourceApplyAdagradV2",
            "ResourceApplyAdam", "ResourceApplyAdamWithAmsgrad",
            "ResourceApplyAddSign", "ResourceApplyCenteredRMSProp",
            "ResourceApplyFtrl", "ResourceApplyFtrlV2",
            "ResourceApplyGradientDescent", "ResourceApplyKerasMomentum",
            "ResourceApplyMomentum", "ResourceApplyPowerSign",
            "ResourceApplyProximalAdagrad",
            "ResourceApplyProximalGradientDescent", "ResourceApplyRMSProp",
            "ResourceCountUpTo", "ResourceGather", "ResourceGatherNd",
            "ResourceScatterAdd", "ResourceScatterDiv",
            "ResourceScatterMax", "ResourceScatterMin",
            "ResourceScatterMul", "ResourceScatterNdAdd",
            "ResourceScatterNdMax", "ResourceScatterNdMin",
            "ResourceScatterNdSub", "ResourceScatterNdUpdate",
            "ResourceScatterSub", "ResourceScatterUpdate",
            "ResourceSparseApplyAdadelta", "ResourceSparseApplyAdagrad",
            "ResourceSparseApplyAdagradDA", "ResourceSparseApplyAdagradV2",
            "ResourceSparseApplyCenteredRMSProp", "ResourceSparseApplyFtrl",
            "ResourceSparseApplyFtrlV2", "ResourceSparseApplyKerasMomentum",
            "ResourceSparseApplyMomentum",
            "ResourceSparseApplyProximalAdagrad",
            "ResourceSparseApplyProximalGradientDescent",
            "ResourceSparseApplyRMSProp", "ResourceStridedSliceAssign",
            "ScatterAdd", "ScatterDiv", "ScatterMax", "ScatterMin",
            "ScatterMul", "ScatterNd", "ScatterNdAdd", "ScatterNdMax",
            "ScatterNdMin", "ScatterNdNonAliasingAdd", "ScatterNdSub",
            "ScatterNdUpdate", "ScatterSub", "ScatterUpdate",
            "SparseApplyAdadelta", "SparseApplyAdagrad",
            "SparseApplyAdagradDA", "SparseApplyAdagradV2",
            "SparseApplyCenteredRMSProp", "SparseApplyFtrl",
            "SparseApplyFtrlV2", "SparseApplyMomentum",
            "SparseApplyProximalAdagrad",
            "SparseApplyProximalGradientDescent", "SparseApplyRMSProp",
            "StridedSliceAssign", "TemporaryVariable", "VarHandleOp",
            "VarIsInitializedOp", "Variable", "VariableShape", "VariableV2",
        ),
    ),
    "lookup_tables": Family(
        reason=(
            "Hash tables filled from tensors or from an in-memory dataset. "
            "Tables filled from a file (InitializeTableFromTextFile*) are "
            "not listed: they are accepted only structurally, for the "
            "model's own assets."
        ),
        ops=(
            "AnonymousHashTable", "AnonymousMutableDenseHashTable",
            "AnonymousMutableHashTable",
            "AnonymousMutableHashTableOfTensors", "HashTable",
            "HashTableV2", "InitializeTable", "InitializeTableFromDataset",
            "InitializeTableV2", "LookupTableExport", "LookupTableExportV2",
            "LookupTableFind", "LookupTableFindV2", "LookupTableImport",
            "LookupTableImportV2", "LookupTableInsert",
            "LookupTableInsertV2", "LookupTableRemoveV2", "LookupTableSize",
            "LookupTableSizeV2", "MutableDenseHashTable",
            "MutableDenseHashTableV2", "MutableHashTable",
            "MutableHashTableOfTensors", "MutableHashTableOfTensorsV2",
            "MutableHashTableV2",
        ),
    ),
    "tensor_containers": Family(
        reason=(
            "TensorArray, TensorList, TensorMap, stacks and composite- "
            "tensor variants: containers of tensors in memory."
        ),
        ops=(
            "CompositeTensorVariantFromComponents",
            "CompositeTensorVariantToComponents", "EmptyTensorList",
            "EmptyTensorMap", "Stack", "StackClose", "StackCloseV2",
            "StackPop", "StackPopV2", "StackPush", "StackPushV2", "StackV2",
            "TensorArray", "TensorArrayClose", "TensorArrayCloseV2",
            "TensorArrayCloseV3", "TensorArrayConcat",
            "TensorArrayConcatV2", "TensorArrayConcatV3",
            "TensorArrayGather", "TensorArrayGatherV2",
            "TensorArrayGatherV3", "TensorArrayGrad", "TensorArrayGradV2",
            "TensorArrayGradV3", "TensorArrayGradWithShape",
            "TensorArrayPack", "TensorArrayRead", "TensorArrayReadV2",
            "TensorArrayReadV3", "TensorArrayScatter",
            "TensorArrayScatterV2", "TensorArrayScatterV3",
            "TensorArraySize", "TensorArraySizeV2", "TensorArraySizeV3",
            "TensorArraySplit", "TensorArraySplitV2", "TensorArraySplitV3",
            "TensorArrayUnpack", "TensorArrayV2", "TensorArrayV3",
            "TensorArrayWrite", "TensorArrayWriteV2", "TensorArrayWriteV3",
            "TensorListConcat", "TensorListConcatLists",
            "TensorListConcatV2", "TensorListElementShape",
            "TensorListFromTensor", "TensorListGather", "TensorListGetItem",
            "TensorListLength", "TensorListPopBack", "TensorListPushBack",
            "TensorListPushBackBatch", "TensorListReserve",
            "TensorListResize", "TensorListScatter",
            "TensorListScatterIntoExistingList", "TensorListScatterV2",
            "TensorListSetItem", "TensorListSplit", "TensorListStack",
            "TensorMapErase", "TensorMapHasKey", "TensorMapInsert",
            "TensorMapLookup", "TensorMapSize", "TensorMapStackKeys",
        ),
    ),
    "strings": Family(
        reason=(
            "String formatting, splitting, regular expressions, hashing, "
            "Unicode, base64 and parsing of serialized tf.Example/tensors "
            "held in tensors. `pattern` inputs are regular expressions, not "
            "file patterns; ShardedFilename/ShardedFilespec only format a "
            "string (the checkpoint saver uses them) and open nothing."
        ),
        ops=(
            "AsString", "DecodeBase64", "DecodeCSV", "DecodeCompressed",
            "DecodeJSONExample", "DecodePaddedRaw", "DecodeRaw",
            "DeserializeManySparse", "DeserializeSparse", "EditDistance",
            "EncodeBase64", "ParseExample", "ParseExampleV2",
            "ParseSequenceExample", "ParseSequenceExampleV2",
            "ParseSingleExample", "ParseSingleSequenceExample",
            "ParseTensor", "ReduceJoin", "RegexFullMatch", "RegexReplace",
            "SerializeManySparse", "SerializeSparse", "SerializeTensor",
            "ShardedFilename", "ShardedFilespec", "StaticRegexFullMatch",
            "StaticRegexReplace", "StringFormat", "StringJoin",
            "StringLength", "StringLower", "StringNGrams", "StringSplit",
            "StringSplitV2", "StringStrip", "StringToHashBucket",
            "StringToHashBucketFast", "StringToHashBucketStrong",
            "StringToNumber", "StringUpper", "Substr", "UnicodeDecode",
            "UnicodeDecodeWithOffsets", "UnicodeEncode", "UnicodeScript",
            "UnicodeTranscode", "UnsortedSegmentJoin",
        ),
    ),
    "images_audio": Family(
        reason=(
            "Decode, encode, resize, crop, colour-adjust and box operations "
            "on image and audio bytes already held in tensors."
        ),
        ops=(
            "AdjustContrast", "AdjustContrastv2", "AdjustHue",
            "AdjustSaturation", "AudioSpectrogram",
            "CombinedNonMaxSuppression", "CropAndResize",
            "CropAndResizeGradBoxes", "CropAndResizeGradImage",
            "DecodeAndCropJpeg", "DecodeBmp", "DecodeGif", "DecodeImage",
            "DecodeJpeg", "DecodeJxl", "DecodePng", "DecodeWav",
            "DecodeWebP", "DrawBoundingBoxes", "DrawBoundingBoxesV2",
            "EncodeJpeg", "EncodeJpegVariableQuality", "EncodePng",
            "EncodeWav", "ExtractGlimpse", "ExtractGlimpseV2",
            "ExtractImagePatches", "ExtractJpegShape",
            "ExtractVolumePatches", "GenerateBoundingBoxProposals",
            "HSVToRGB", "ImageProjectiveTransformV2",
            "ImageProjectiveTransformV3", "Mfcc", "NonMaxSuppression",
            "NonMaxSuppressionV2", "NonMaxSuppressionV3",
            "NonMaxSuppressionV4", "NonMaxSuppressionV5",
            "NonMaxSuppressionWithOverlaps", "RGBToHSV", "ResizeArea",
            "ResizeBicubic", "ResizeBicubicGrad", "ResizeBilinear",
            "ResizeBilinearGrad", "ResizeNearestNeighbor",
            "ResizeNearestNeighborGrad", "SampleDistortedBoundingBox",
            "SampleDistortedBoundingBoxV2", "ScaleAndTranslate",
            "ScaleAndTranslateGrad",
        ),
    ),
    "sparse_ragged_sets": Family(
        reason=(
            "Sparse, ragged and CSR-matrix tensors, bincounts and set "
            "operations: index arithmetic in memory."
        ),
        ops=(
            "AddManySparseToTensorsMap", "AddSparseToTensorsMap",
            "Bincount", "CSRSparseMatrixComponents",
            "CSRSparseMatrixToDense", "CSRSparseMatrixToSparseTensor",
            "DenseBincount", "DenseCountSparseOutput",
            "DenseToCSRSparseMatrix", "DenseToDenseSetOperation",
            "DenseToSparseSetOperation", "RaggedBincount",
            "RaggedCountSparseOutput", "RaggedCross", "RaggedFillEmptyRows",
            "RaggedFillEmptyRowsGrad", "RaggedGather", "RaggedRange",
            "RaggedTensorFromVariant", "RaggedTensorToSparse",
            "RaggedTensorToTensor", "RaggedTensorToVariant",
            "RaggedTensorToVariantGradient", "SetSize", "SparseAdd",
            "SparseAddGrad", "SparseBincount", "SparseConcat",
            "SparseCountSparseOutput", "SparseCross", "SparseCrossHashed",
            "SparseCrossV2", "SparseDenseCwiseAdd", "SparseDenseCwiseDiv",
            "SparseDenseCwiseMul", "SparseFillEmptyRows",
            "SparseFillEmptyRowsGrad", "SparseMatMul", "SparseMatrixAdd",
            "SparseMatrixMatMul", "SparseMatrixMul", "SparseMatrixNNZ",
            "SparseMatrixOrderingAMD", "SparseMatrixSoftmax",
            "SparseMatrixSoftmaxGrad", "SparseMatrixSparseCholesky",
            "SparseMatrixSparseMatMul", "SparseMatrixTranspose",
            "SparseMatrixZeros", "SparseReduceMax", "SparseReduceMaxSparse",
            "SparseReduceSum", "SparseReduceSumSparse", "SparseReorder",
            "SparseReshape", "SparseSegmentMean", "SparseSegmentMeanGrad",
            "SparseSegmentMeanGradV2", "SparseSegmentMeanWithNumSegments",
            "SparseSegmentSqrtN", "SparseSegmentSqrtNGrad",
            "SparseSegmentSqrtNGradV2", "SparseSegmentSqrtNWithNumSegments",
            "SparseSegmentSum", "SparseSegmentSumGrad",
            "SparseSegmentSumGradV2", "SparseSegmentSumWithNumSegments",
            "SparseSlice", "SparseSliceGrad", "SparseSoftmax",
            "SparseSoftmaxCrossEntropyWithLogits", "SparseSparseMaximum",
            "SparseSparseMinimum", "SparseSplit", "SparseTensorDenseAdd",
            "SparseTensorDenseMatMul", "SparseTensorToCSRSparseMatrix",
            "SparseToDense", "SparseToSparseSetOperation",
            "TakeManySparseFromTensorsMap",
        ),
    ),
    "quantization": Family(
        reason=(
            "Quantize, dequantize and quantized kernels: integer arithmetic "
            "on tensors."
        ),
        ops=(
            "Dequantize", "FakeQuantWithMinMaxArgs",
            "FakeQuantWithMinMaxArgsGradient", "FakeQuantWithMinMaxVars",
            "FakeQuantWithMinMaxVarsGradient",
            "FakeQuantWithMinMaxVarsPerChannel",
            "FakeQuantWithMinMaxVarsPerChannelGradient",
            "QuantizeAndDequantize", "QuantizeAndDequantizeV2",
            "QuantizeAndDequantizeV3", "QuantizeAndDequantizeV4",
            "QuantizeAndDequantizeV4Grad", "QuantizeDownAndShrinkRange",
            "QuantizeV2", "QuantizedAdd", "QuantizedAvgPool",
            "QuantizedBatchNormWithGlobalNormalization", "QuantizedBiasAdd",
            "QuantizedConcat", "QuantizedConcatV2", "QuantizedConv2D",
            "QuantizedConv2DAndRelu", "QuantizedConv2DAndReluAndRequantize",
            "QuantizedConv2DAndRequantize", "QuantizedConv2DPerChannel",
            "QuantizedConv2DWithBias", "QuantizedConv2DWithBiasAndRelu",
            "QuantizedConv2DWithBiasAndReluAndRequantize",
            "QuantizedConv2DWithBiasAndRequantize",
            "QuantizedConv2DWithBiasSignedSumAndReluAndRequantize",
            "QuantizedConv2DWithBiasSumAndRelu",
            "QuantizedConv2DWithBiasSumAndReluAndRequantize",
            "QuantizedDepthwiseConv2D", "QuantizedDepthwiseConv2DWithBias",
            "QuantizedDepthwiseConv2DWithBiasAndRelu",
            "QuantizedDepthwiseConv2DWithBiasAndReluAndRequantize",
            "QuantizedInstanceNorm", "QuantizedMatMul",
            "QuantizedMatMulWithBias",
            "QuantizedMatMulWithBiasAndDequantize",
            "QuantizedMatMulWithBiasAndRelu",
            "QuantizedMatMulWithBiasAndReluAndRequantize",
            "QuantizedMatMulWithBiasAndRequantize", "QuantizedMaxPool",
            "QuantizedMul", "QuantizedRelu", "QuantizedRelu6",
            "QuantizedReluX", "QuantizedReshape", "QuantizedResizeBilinear",
            "RequantizationRange", "RequantizationRangePerChannel",
            "Requantize", "RequantizePerChannel", "UniformQuantize",
            "UniformQuantizedAdd", "UniformQuantizedClipByValue",
            "UniformQuantizedConvolution",
            "UniformQuantizedConvolutionHybrid", "UniformQuantizedDot",
            "UniformQuantizedDotHybrid", "UniformRequantize",
        ),
    ),
    "datasets_in_memory": Family(
        reason=(
            "tf.data sources built from tensors (TensorDataset, "
            "TensorSliceDataset, RangeDataset) and transformations whose "
            "functions the scan follows. Dataset ops that read, list, "
            "cache, snapshot or save files, or rebuild a dataset from a "
            "serialized graph, are not listed."
        ),
        ops=(
            "AnonymousIterator", "AnonymousIteratorV3", "BatchDataset",
            "BatchDatasetV2", "ConcatenateDataset", "DatasetCardinality",
            "DatasetToSingleElement", "DeleteIterator", "FilterDataset",
            "FinalizeDataset", "FlatMapDataset", "IteratorGetNext",
            "IteratorGetNextAsOptional", "IteratorGetNextSync",
            "MakeIterator", "MapAndBatchDataset", "MapDataset",
            "OptionalFromValue", "OptionalGetValue", "OptionalHasValue",
            "OptionalNone", "OptionsDataset", "PaddedBatchDataset",
            "PaddedBatchDatasetV2", "ParallelMapDataset",
            "ParallelMapDatasetV2", "PrefetchDataset", "RangeDataset",
            "ReduceDataset", "RepeatDataset", "ShuffleDataset",
            "ShuffleDatasetV2", "ShuffleDatasetV3", "SkipDataset",
            "TakeDataset", "TensorDataset", "TensorSliceDataset",
            "UnbatchDataset", "WindowDataset", "ZipDataset",
        ),
    ),
}
# fmt: on

# Ops of custom-op packages, reviewed the same way. They are registered
# only once the package is imported; the model is refused as needing a
# missing package until then.
# fmt: off
EXTENSION_FAMILIES = {
    "tensorflow_text": Family(
        reason=(
            "TF.Text tokenizers and normalizers on string tensors. "
            "SentencepieceOp takes the serialized model as an attr and the "
            "Fast* ops take their model as a tensor (bytes, not a file "
            "name); WordpieceTokenizeWithOffsets reads its vocabulary from "
            "a lookup-table resource; regex patterns are regular expressions."
        ),
        ops=(
            "CaseFoldUTF8", "ConstrainedSequence", "FastBertNormalize",
            "FastWordpieceTokenizeWithOffsets", "MaxSpanningTree",
            "NormalizeUTF8", "NormalizeUTF8WithOffsetsMap",
            "RegexSplitWithOffsets", "SentencepieceDetokenizeOp",
            "SentencepieceIdToStringOp", "SentencepieceOp",
            "SentencepieceStringToIdOp", "SentencepieceTokenizeOp",
            "SentencepieceTokenizeWithOffsetsOp", "SentencepieceVocabSizeOp",
            "SplitMergeTokenizeWithOffsets", "TokenizerFromLogits",
            "UnicodeScriptTokenizeWithOffsets",
            "WhitespaceTokenizeWithOffsets", "WordpieceTokenizeWithOffsets",
        ),
        package="tensorflow-text",
        module="tensorflow_text",
    ),
}

# fmt: on

# Ops accepted only where the scan proves, from the model's structure, that
# they act on what TensorFlow itself passes them. Not part of SAFE_OPS.
STRUCTURAL = {
    "SaveV2": (
        "only in the functions the SavedModel registers as its saver "
        "(saver_def), writing under the checkpoint prefix TensorFlow passes"
    ),
    "RestoreV2": (
        "only in the saver's restore function, reading the checkpoint "
        "prefix TensorFlow passes"
    ),
    "MergeV2Checkpoints": (
        "only in the saver's save function, on the checkpoint prefix "
        "TensorFlow passes"
    ),
    "InitializeTableFromTextFile": (
        "only when the file name provably comes from an Asset of the model "
        "whose file is a plain relative name inside assets/"
    ),
    "InitializeTableFromTextFileV2": (
        "only when the file name provably comes from an Asset of the model "
        "whose file is a plain relative name inside assets/"
    ),
    "DatasetFromGraph": (
        "only when the graph is a constant that decodes and whose ops pass "
        "the same scan"
    ),
    "PrintV2": "only to stdout, stderr or the log, never to a file or URL",
    "DecodeProtoV2": (
        "only with descriptor_source 'local://' (the protos compiled into "
        "the binary) or 'bytes://...' (the descriptor inline), never a file"
    ),
    "EncodeProto": (
        "only with descriptor_source 'local://' or 'bytes://...', never a file"
    ),
}

# Internal ops that only mark the inputs and outputs of a graph; accepted
# inside graphs carried as data (a dataset graph ends in `_Retval`).
EMBEDDED_GRAPH_OPS = {
    "_Arg": "marks an input of the graph",
    "_Retval": "marks an output of the graph",
}

# Listed ops whose OpDef looks like it takes a file name, pattern or URL
# (an input/attr name or its doc), and why it does not open one.
NOT_FILE_NAMES = {
    "RegexFullMatch": "`pattern` is a regular expression",
    "RegexReplace": "`pattern` is a regular expression",
    "StaticRegexFullMatch": "`pattern` is a regular expression",
    "StaticRegexReplace": "`pattern` is a regular expression",
    "ShardedFilename": "formats a name string; opens nothing",
    "ShardedFilespec": "formats a name string; opens nothing",
    "RegexSplitWithOffsets": "`delim_regex_pattern` is a regular expression",
    "WordpieceTokenizeWithOffsets": (
        "`vocab_lookup_table` is a lookup-table resource, not a file"
    ),
    "TensorSliceDataset": (
        "`is_files` only marks elements for tf.data bookkeeping; "
        "nothing is opened"
    ),
}

# Packages that register custom ops, for the "install/import" hint.
_PACKAGE_PREFIXES = {
    "Sentencepiece": "tensorflow-text",
    "IO>": "tensorflow-io",
    "SimpleML": "tensorflow-decision-forests",
}

SAFE_OPS = frozenset(op for f in FAMILIES.values() for op in f.ops)
EXTENSION_OPS = frozenset(
    op for f in EXTENSION_FAMILIES.values() for op in f.ops
)


def family_of(op):
    """The name of the family that lists `op`, or None."""
    for name, family in {**FAMILIES, **EXTENSION_FAMILIES}.items():
        if op in family.ops:
            return name
    return None


def package_for(op):
    """The pip package known to register `op`, or None."""
    for family in EXTENSION_FAMILIES.values():
        if op in family.ops:
            return family.package
    for prefix, package in _PACKAGE_PREFIXES.items():
        if op.startswith(prefix):
            return package
    return None
