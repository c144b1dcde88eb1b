"""Small reusable SavedModels, written the way TF Hub publishers write them.

Each builder saves a `tf.train.Checkpoint` (or `tf.Module`) with `__call__`
traced for `training=True/False`, and `variables`, `trainable_variables` and
`regularization_losses` attributes, then returns the export directory.
"""

import os

import numpy as np
import tensorflow as tf

VOCAB = ["<unk>", "the", "cat", "dog", "sat", "ran", "on", "mat", "hello"]


class MyMulModel(tf.train.Checkpoint):
    """The TF Hub guide's example: `x * v`, with a regularizer on `v`."""

    def __init__(self, v_init):
        super().__init__()
        self.v = tf.Variable(v_init)
        self.variables = [self.v]
        self.trainable_variables = [self.v]
        self.regularization_losses = [
            tf.function(input_signature=[])(lambda: 0.001 * self.v**2),
        ]

    @tf.function(input_signature=[tf.TensorSpec(shape=None, dtype=tf.float32)])
    def __call__(self, inputs):
        return tf.multiply(inputs, self.v)


def save_mul_model(path, v_init=2.0):
    tf.saved_model.save(MyMulModel(v_init), path)
    return path


class TextEmbedding(tf.train.Checkpoint):
    """Sentences -> mean token embedding; vocabulary from an asset file.

    In training mode it applies dropout, so outputs differ from inference.
    """

    def __init__(self, vocab_file, dim=4):
        super().__init__()
        self.vocab_file = tf.saved_model.Asset(vocab_file)
        initializer = tf.lookup.TextFileInitializer(
            vocab_file,
            tf.string,
            tf.lookup.TextFileIndex.WHOLE_LINE,
            tf.int64,
            tf.lookup.TextFileIndex.LINE_NUMBER,
        )
        self.table = tf.lookup.StaticHashTable(initializer, default_value=0)
        rng = np.random.default_rng(0)
        self.embeddings = tf.Variable(
            rng.normal(size=(len(VOCAB), dim)).astype("float32"),
            name="embeddings",
        )
        self.variables = [self.embeddings]
        self.trainable_variables = [self.embeddings]
        self.regularization_losses = [
            tf.function(input_signature=[])(
                lambda: 1e-3 * tf.reduce_sum(self.embeddings**2)
            )
        ]

    @tf.function
    def __call__(self, sentences, training=False):
        tokens = tf.strings.split(tf.strings.lower(sentences))
        ids = self.table.lookup(tokens)
        vectors = tf.gather(self.embeddings, ids)
        pooled = tf.reduce_mean(vectors, axis=1)
        pooled = tf.where(tf.math.is_nan(pooled), 0.0, pooled)
        if training:
            pooled = tf.nn.dropout(pooled, rate=0.5)
        return pooled


def save_text_embedding(path, dim=4):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    vocab_file = os.path.join(os.path.dirname(path), "vocab_src.txt")
    with open(vocab_file, "w") as f:
        f.write("\n".join(VOCAB) + "\n")
    model = TextEmbedding(vocab_file, dim)
    spec = tf.TensorSpec([None], tf.string)
    for training in (True, False):
        model.__call__.get_concrete_function(spec, training=training)
    tf.saved_model.save(model, path)
    return path


class ImageFeatureVector(tf.train.Checkpoint):
    """Conv + batch norm + global pool, like a TF Hub image feature vector.

    `batch_norm_momentum` is a tensor argument, as in TF Hub's MobileNets.
    The moving statistics are variables the publisher does not list as
    trainable.
    """

    def __init__(self, channels=6, regularize=True):
        super().__init__()
        rng = np.random.default_rng(1)
        self.kernel = tf.Variable(
            rng.normal(0, 0.3, size=(3, 3, 3, channels)).astype("float32"),
            name="block1/conv/kernel",
        )
        self.gamma = tf.Variable(tf.ones([channels]), name="block1/bn/gamma")
        self.beta = tf.Variable(tf.zeros([channels]), name="block1/bn/beta")
        self.moving_mean = tf.Variable(
            tf.zeros([channels]), name="block1/bn/moving_mean"
        )
        self.moving_variance = tf.Variable(
            tf.ones([channels]), name="block1/bn/moving_variance"
        )
        self.head = tf.Variable(
            rng.normal(0, 0.3, size=(channels, channels)).astype("float32"),
            name="block2/dense/kernel",
        )
        self.variables = [
            self.kernel,
            self.gamma,
            self.beta,
            self.moving_mean,
            self.moving_variance,
            self.head,
        ]
        self.trainable_variables = [
            self.kernel,
            self.gamma,
            self.beta,
            self.head,
        ]
        self.regularization_losses = (
            [
                tf.function(input_signature=[])(
                    lambda: 1e-4 * tf.reduce_sum(self.kernel**2)
                )
            ]
            if regularize
            else []
        )

    @tf.function
    def __call__(self, images, training=False, batch_norm_momentum=0.99):
        x = tf.nn.conv2d(images, self.kernel, 1, "SAME")
        if training:
            mean, variance = tf.nn.moments(x, axes=[0, 1, 2])
            m = batch_norm_momentum
            self.moving_mean.assign(m * self.moving_mean + (1 - m) * mean)
            self.moving_variance.assign(
                m * self.moving_variance + (1 - m) * variance
            )
        else:
            mean, variance = self.moving_mean, self.moving_variance
        x = tf.nn.batch_normalization(
            x, mean, variance, self.beta, self.gamma, 1e-3
        )
        x = tf.reduce_mean(tf.nn.relu(x), axis=[1, 2])
        return tf.matmul(x, self.head)


def save_image_feature_vector(path, size=8, channels=6, regularize=True):
    """`size=None` traces for images of any height and width."""
    model = ImageFeatureVector(channels, regularize)
    spec = tf.TensorSpec([None, size, size, 3], tf.float32)
    momentum = tf.TensorSpec([], tf.float32)
    for training in (True, False):
        model.__call__.get_concrete_function(
            spec, training=training, batch_norm_momentum=momentum
        )
        model.__call__.get_concrete_function(spec, training=training)
    tf.saved_model.save(model, path)
    return path


def save_signature_only(path):
    """A model with no `__call__`, two signatures and dict outputs."""
    module = tf.Module()
    module.w = tf.Variable([[1.0, -1.0], [0.5, 2.0]], name="w")

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32)])
    def serve(x):
        logits = tf.matmul(x, module.w)
        return {"logits": logits, "probabilities": tf.nn.softmax(logits)}

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32)])
    def norm(x):
        return {"norm": tf.norm(x, axis=1)}

    module.serve = serve
    tf.saved_model.save(
        module, path, signatures={"serving_default": serve, "norm": norm}
    )
    return path


class BertLikeEncoder(tf.train.Checkpoint):
    """Dict inputs (`input_word_ids`, `input_mask`, `input_type_ids`) ->
    dict outputs (`pooled_output`, `sequence_output`), like BERT on TF Hub."""

    def __init__(self, vocab=20, hidden=4):
        super().__init__()
        rng = np.random.default_rng(2)
        self.word = tf.Variable(
            rng.normal(size=(vocab, hidden)).astype("float32"),
            name="embeddings/word",
        )
        self.type = tf.Variable(
            rng.normal(size=(2, hidden)).astype("float32"),
            name="embeddings/type",
        )
        self.pool = tf.Variable(tf.eye(hidden), name="pooler/dense/kernel")
        self.variables = [self.word, self.type, self.pool]
        self.trainable_variables = [self.word, self.type, self.pool]
        self.regularization_losses = []

    @tf.function
    def __call__(self, inputs, training=False):
        x = tf.gather(self.word, inputs["input_word_ids"]) + tf.gather(
            self.type, inputs["input_type_ids"]
        )
        mask = tf.cast(inputs["input_mask"], tf.float32)[..., None]
        x = x * mask
        if training:
            x = tf.nn.dropout(x, rate=0.3)
        pooled = tf.tanh(
            tf.matmul(tf.reduce_sum(x, 1) / tf.reduce_sum(mask, 1), self.pool)
        )
        return {"pooled_output": pooled, "sequence_output": x}


BERT_INPUT_NAMES = ("input_word_ids", "input_mask", "input_type_ids")


def save_bert_like(path):
    model = BertLikeEncoder()
    spec = {n: tf.TensorSpec([None, None], tf.int32) for n in BERT_INPUT_NAMES}
    for training in (True, False):
        model.__call__.get_concrete_function(spec, training=training)
    tf.saved_model.save(model, path)
    return path


def save_tf1_hub_module(path):
    """A legacy TF1 Hub module: y = 0.5 x + 2 behind a "default" signature."""
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None], name="x")
        a = tf.compat.v1.get_variable("a", initializer=0.5)
        b = tf.compat.v1.get_variable("b", initializer=2.0)
        y = a * x + b
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            builder = tf.compat.v1.saved_model.Builder(path)
            signature = tf.compat.v1.saved_model.predict_signature_def(
                {"default": x}, {"default": y}
            )
            builder.add_meta_graph_and_variables(
                sess, [], signature_def_map={"default": signature}
            )
            builder.save()
    with open(os.path.join(path, "tfhub_module.pb"), "wb") as f:
        f.write(b"\x08\x03")
    return path
