# What only a fresh Julia process shows: compiler tracebacks that Julia 1.5 prints (to stderr)
# while inferring a call from global scope, then goes on.

@testset "no compiler tracebacks for products of globals (fresh process)" begin
    script = """
        using SparseJL, SparseArrays, LinearAlgebra
        A1 = CSRMatrix(sprand(60, 60, 0.2))
        B1 = BSRMatrix(sprand(60, 60, 0.2), 4)
        X1 = rand(60, 5)
        f() = spgemm(A1, A1); f()
        g() = spgemm(B1, B1); g()
        h() = (A1 * X1, B1 * X1, A1' * X1, X1' * B1, A1 * A1', mul!(zeros(60, 5), B1, X1)); h()
        show(devnull, MIME("text/plain"), A1)
        print("done")
        """
    project = dirname(Base.active_project())
    cmd = `$(Base.julia_cmd()) --startup-file=no --project=$project -e $script`
    errfile = tempname()
    env = merge(copy(ENV), Dict("JULIA_NUM_THREADS" => "2"))
    out = read(pipeline(setenv(cmd, env); stderr=errfile), String)
    stderr_text = read(errfile, String)
    rm(errfile)
    @test out == "done"
    @test stderr_text == ""
    isempty(stderr_text) || println(first(stderr_text, 2000))
end
